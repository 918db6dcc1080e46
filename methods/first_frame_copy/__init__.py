"""first_frame_copy (fill in: import the model module so it registers)."""
