#!/usr/bin/env bash
# Train a VITR head for real photos on Flickr30K, evaluate it, and search with it.
#
# Needs: vitr-qdrant installed; a GPU (CPU works, slowly); open_clip's ViT-B-32 OpenAI weights
# (downloaded on first use, or set PRETRAINED to a local checkpoint file); and Flickr30K:
#   FLICKR/dataset_flickr30k.json   Karpathy's split file (images[].filename, .split, .sentences[].raw)
#   FLICKR/flickr30k-images/        the 31,783 JPEGs
# The training pool holds every train image at the model's input size in memory (about 4.5 GB).
#
#   FLICKR=~/data/flickr30k bash examples/train_head_flickr30k.sh
set -euo pipefail

FLICKR=${FLICKR:?set FLICKR to the folder with dataset_flickr30k.json and flickr30k-images/}
OUT=${OUT:-runs/vitr-ViT-B-32-flickr30k}
DATA="$FLICKR/dataset_flickr30k.json"
IMAGES="$FLICKR/flickr30k-images"

# 1. The head stage: local encoders + fusion on the frozen ViT-B-32 backbone (options: vitr train
#    --help). The model directory references the backbone instead of copying it. eval_every=0: the trainer's own evaluation is the Relation Scenes protocol,
#    which says little about photos; step 2 evaluates on Flickr30K's test split instead.
#    Several GPUs: torchrun --nproc_per_node 8 -m vitr_qdrant.encoders.train stage=head ...
INIT=()
if [[ -n "${PRETRAINED:-}" ]]; then   # offline: the backbone from a local open_clip checkpoint file
    python -c "import sys; from vitr_qdrant.encoders import create_model, save_model
save_model(create_model('vitr-ViT-B-32', pretrained=sys.argv[1], device='cpu'), sys.argv[2])" "$PRETRAINED" "$OUT/init"
    INIT=(init="$OUT/init")
fi
vitr train stage=head model=vitr-ViT-B-32 ${INIT[@]+"${INIT[@]}"} \
    data="$DATA" data_format=karpathy data_split=train image_root="$IMAGES" \
    out="$OUT" epochs=10 batch_size=128 workers=8 eval_every=0
MODEL="$OUT/last"   # config.json + model.safetensors; rerunning the command resumes from here

# 2. Recall@1/5/10 both ways on the 1,000 test images (5 captions each): the VITR head, then the
#    CLIP baseline (global mode) of the same model.
vitr eval --data "$DATA" --format karpathy --split test --image-root "$IMAGES" --model "$MODEL" --mode vitr
vitr eval --data "$DATA" --format karpathy --split test --image-root "$IMAGES" --model "$MODEL" --mode global

# 3. Index the photos with the trained model and search by relation (a GPU decodes JPEGs itself).
vitr index "$IMAGES" -c flickr30k --model "$MODEL" --batch-size 256
vitr search "a dog to the left of a man on a bench" -c flickr30k --model "$MODEL" -k 5
