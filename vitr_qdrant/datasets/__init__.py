"""Datasets: Relation Scenes (the synthetic relation world) and real-dataset formats."""
