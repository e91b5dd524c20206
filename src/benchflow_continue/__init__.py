"""benchflow-continue: continue a timed-out agent run by replaying its recorded LLM answers."""

__version__ = "0.1.0"
