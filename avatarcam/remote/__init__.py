"""Remote GPU worker: ``avatarcam serve`` (Ray Serve, server.py) and the RemoteAnimator (client.py)
that talks to it over the fixed wire format in protocol.py. Ray is needed only by server.py."""
