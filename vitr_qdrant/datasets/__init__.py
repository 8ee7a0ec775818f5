"""Datasets: the worlds we train and measure on (Relation Scenes, Object Scenes) and
real-dataset formats."""
