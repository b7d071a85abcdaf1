"""VM stage: the QEMU command line (qemu) and the sessions that drive a guest: its
serial console (console) or SSH (ssh), both speaking the Transport protocol.
"""
