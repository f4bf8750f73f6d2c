"""Alerting (DESIGN §8): rules find conditions, the engine keeps incidents, channels notify."""
