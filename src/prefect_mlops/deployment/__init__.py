"""Model deployment: rollout configuration and decisions, canary / shadow watching and live quality
from late labels."""
