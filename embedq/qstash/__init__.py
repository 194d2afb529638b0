"""Everything embedq knows of QStash, in one place: the message format (built by the listener,
parsed by the webhook), the client, the signature verifier and the schedules. The wire protocol
these follow is described in ../shared/QSTASH.md."""
