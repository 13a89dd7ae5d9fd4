"""Training: the explicit loop (fit, train_epoch, train_step), optimizers, schedules, batch augmentation, weight EMA."""
