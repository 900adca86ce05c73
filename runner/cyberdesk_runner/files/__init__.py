"""Files in and out of runs: a job's `files:` attached to each create call (inputs.py), and output attachments
downloaded next to the result file (outputs.py)."""
