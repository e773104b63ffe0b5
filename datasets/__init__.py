"""Benchmark loaders, each registered in Dassl's DATASET_REGISTRY on import."""
