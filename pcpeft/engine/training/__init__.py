"""Training: the one loop and its hooks, the tasks, fine-tuning and pre-training, and what they use."""
