"""The model-facing building blocks: loading models, batched generation, likelihoods, losses, the training
loop, embeddings and the memory model of a training step."""
