"""Real-time delivery: the /ws protocol, the subscription hub, and the fan-out broker."""
