# shellcheck shell=bash
# shellcheck disable=SC2034  # read by build_image.sh, which sources this profile
# Board profile: generic arm64 machine (QEMU "virt") with Debian's own kernel. Boots through UEFI:
# GRUB on the boot partition (the ESP) picks slot A or B from its environment (RAUC's GRUB backend:
# ORDER, A_OK/B_OK, A_TRY/B_TRY) and loads that slot's own kernel and tiny-initramfs. Used by
# `make image-test`.

BOARD_DESCRIPTION="generic arm64, UEFI (QEMU virt), Debian kernel, GRUB A/B"
BOARD_PACKAGES=(linux-image-arm64 tiny-initramfs grub-efi-arm64-bin)
# tiny-initramfs loads exactly these modules (and their dependencies) to mount the root file system
BOARD_INITRAMFS_MODULES="virtio_pci,virtio_blk,ext4,crc32c_generic"
BOARD_CONSOLE="ttyAMA0"
BOARD_BACKENDS='"litert"'
BOARD_RUNTIME_WATCHDOG=""   # QEMU virt has no hardware watchdog unless one is added (-device i6300esb)
BOARD_FIRST_PARTITION_MIB=1
BOARD_VENDOR_REQUIRED=()
BOARD_WHEEL_EXTRAS=()
BOARD_BOOTLOADER=grub
# tiny-initramfs knows kernel device names and UUID= only (not PARTUUID=), and both slots carry the
# same file system UUID: the slots are named by the virtio disk's partitions.
BOARD_SLOT_A_DEVICE=/dev/vda2
BOARD_SLOT_B_DEVICE=/dev/vda3
# how many times GRUB starts a slot that has not been marked good before it gives up on it
BOARD_BOOT_ATTEMPTS=3
GRUB_MODULES="part_gpt fat ext2 normal configfile linux loadenv test echo sleep reboot halt gzio regexp"

board_check_vendor() { :; }

# board_prepare_rootfs ROOTFS: stable names for the slot's kernel and initrd (GRUB loads them from
# the slot it boots, so a kernel update arrives with the rootfs)
board_prepare_rootfs() {
    local rootfs=$1 kernel initrd
    kernel=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort | tail -n1)
    initrd=$(find "$rootfs/boot" -maxdepth 1 -name 'initrd.img-*' -printf '%f\n' | sort | tail -n1)
    [[ -n $kernel ]] || die "no kernel in the rootfs /boot (linux-image-arm64 not installed?)"
    [[ -n $initrd ]] || die "no initrd in the rootfs /boot (tiny-initramfs did not run?)"
    ln -sfn "$kernel" "$rootfs/boot/vmlinuz"
    ln -sfn "$initrd" "$rootfs/boot/initrd.img"
    log "kernel $kernel, initrd $initrd ($(du -k "$rootfs/boot/$initrd" | cut -f1) KiB) in the slot"
}

# board_boot_files ROOTFS BOOTDIR: fill the boot partition (FAT, the EFI system partition)
board_boot_files() {
    local rootfs=$1 boot=$2
    mkdir -p "$boot/EFI/BOOT"
    # shellcheck disable=SC2086  # the module list is split on purpose
    chroot_run "$rootfs" grub-mkimage -O arm64-efi -p /EFI/BOOT -o /tmp/BOOTAA64.EFI $GRUB_MODULES ||
        die "grub-mkimage failed"
    mv "$rootfs/tmp/BOOTAA64.EFI" "$boot/EFI/BOOT/BOOTAA64.EFI"
    sed -e "s|@CMDLINE@|$(board_cmdline)|" -e "s|@ATTEMPTS@|$BOARD_BOOT_ATTEMPTS|" \
        -e "s|@VERSION@|$APPLIANCE_VERSION|" "$IMAGES/boot/grub.cfg" >"$boot/EFI/BOOT/grub.cfg"
    # the environment RAUC and grub.cfg share: slot A good and first, slot B empty
    chroot_run "$rootfs" /bin/sh -c 'grub-editenv /tmp/grubenv create &&
        grub-editenv /tmp/grubenv set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0' || die "grub-editenv failed"
    mv "$rootfs/tmp/grubenv" "$boot/EFI/BOOT/grubenv"
    log "GRUB $(dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Version}' grub-efi-arm64-bin), A/B, $BOARD_BOOT_ATTEMPTS boot attempts per slot"
}

# the slot-independent part; grub.cfg appends root=, rauc.slot=
board_cmdline() {
    echo "rootfstype=ext4 rw rootflags=noatime,commit=60,errors=remount-ro console=$BOARD_CONSOLE panic=10"
}

board_write_bootloader() { :; }
