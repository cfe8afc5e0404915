"""What a Live API session needs besides relaying frames (edges/live.py): seats counted against
its tenant's and its project's limits, and the ephemeral tokens gemgate mints for clients."""
