// /docs of `vitr serve`: the OpenAPI document of this service as a page, with nothing fetched from elsewhere.
"use strict";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function schemaText(schema, spec) {
  if (!schema) return "";
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    const target = spec.components.schemas[name] || {};
    return `${name} ${JSON.stringify(target.properties ? Object.fromEntries(Object.entries(target.properties)
      .map(([k, v]) => [k, v.type || (v.anyOf || []).map((a) => a.type || (a.$ref || "").split("/").pop()).join("|")
                               || (v.$ref || "").split("/").pop()])) : target)}`;
  }
  return JSON.stringify(schema);
}

function operation(path, method, op, spec) {
  const box = el("section", undefined, "op");
  box.append(el("h2", `${method.toUpperCase()} ${path}`), el("p", op.summary || ""));
  if (op.description) box.append(el("p", op.description));
  for (const p of op.parameters || []) {
    box.append(el("p", `${p.in} ${p.name}${p.required ? " (required)" : ""}: ${schemaText(p.schema, spec)}`));
  }
  const body = op.requestBody && op.requestBody.content;
  for (const [media, content] of Object.entries(body || {})) {
    box.append(el("p", `body (${media}): ${schemaText(content.schema, spec)}`));
  }
  for (const [status, response] of Object.entries(op.responses || {})) {
    box.append(el("p", `${status}: ${response.description || ""}`, "stages"));
  }
  return box;
}

async function main() {
  const root = document.getElementById("api");
  try {
    const response = await fetch("openapi.json");
    const spec = await response.json();
    root.replaceChildren(el("p", `${spec.info.title} ${spec.info.version}: ${spec.info.description || ""}`));
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) root.append(operation(path, method, op, spec));
    }
  } catch (err) {
    root.replaceChildren(el("p", `cannot read openapi.json (${err.message})`, "error"));
  }
}

main();
