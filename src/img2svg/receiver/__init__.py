"""`img2svg receive`: the endpoint HiDream POSTs a task's end to (its notify_url callback)."""
