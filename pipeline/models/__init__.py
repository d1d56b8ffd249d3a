"""Models and their training: families, the training loop, batched training, optimisers, NumPy
inference. Knows nothing of MLflow."""
