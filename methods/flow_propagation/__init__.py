"""flow_propagation (fill in: import the model module so it registers)."""
