"""The listener: wakes on NOTIFY or its poll timer, claims jobs by priority, processes them."""

from embedq.listener.worker import Listener, ListenerConfig

__all__ = ["Listener", "ListenerConfig"]
