"""Training, ONNX export, the model registry, the online learner, evaluation, simulation."""
