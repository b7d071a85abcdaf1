"""Guest stage: the initramfs (image, cpio) and what goes in it: busybox, dropbear,
the C guest programs (guestprog, built with zig's musl via zigcc), and the built-in
boot route for machines QEMU cannot direct-boot (bootroute).
"""
