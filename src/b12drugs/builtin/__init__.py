"""Plugins shipped inside the core, registered exactly like external plugins."""
