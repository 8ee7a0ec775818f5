"""Datasets: the worlds we train and measure on (Relation Scenes, Object Scenes) and
real-dataset formats. Each module re-exports its namesake in the encoders' ``data`` package,
where the code lives (it serves training); it may import only the encoders.
"""
