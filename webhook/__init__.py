"""The ASGI app QStash calls: signature verification, job processing, failure callbacks."""
