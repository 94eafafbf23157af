/// Training: the trainer, checkpoints and resume, and metrics.
public enum Training {}
