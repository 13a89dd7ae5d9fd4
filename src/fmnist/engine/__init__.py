"""The training engine: device placement, schedules, augmentation and the explicit training loop."""
