"""maskrnn (fill in: import the model module so it registers)."""
