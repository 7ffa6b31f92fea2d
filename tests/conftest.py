import os

# No progress bars in test logs.
os.environ.setdefault("MSBRIDGE_PROGRESS", "0")
