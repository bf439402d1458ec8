"""Training the 360-Adapter: the latitude-aware loss, the sample schedule, checkpoints, the loop."""
