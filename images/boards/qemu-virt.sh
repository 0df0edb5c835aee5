# shellcheck shell=bash
# shellcheck disable=SC2034  # read by build_image.sh, which sources this profile
# Board profile: generic arm64 machine (QEMU "virt", or any UEFI arm64 box) with Debian's own kernel.
# Boots through UEFI: systemd-boot on the boot partition (the ESP) loads Debian's kernel and a
# tiny-initramfs image. Used by `make image-test`.

BOARD_DESCRIPTION="generic arm64, UEFI (QEMU virt), Debian kernel"
BOARD_PACKAGES=(linux-image-arm64 tiny-initramfs systemd-boot-efi)
# tiny-initramfs loads exactly these modules (and their dependencies) to mount the root file system
BOARD_INITRAMFS_MODULES="virtio_pci,virtio_blk,ext4,crc32c_generic"
BOARD_CONSOLE="ttyAMA0"
BOARD_BACKENDS='"litert"'
BOARD_RUNTIME_WATCHDOG=""   # QEMU virt has no hardware watchdog unless one is added (-device i6300esb)
BOARD_FIRST_PARTITION_MIB=1
BOARD_VENDOR_REQUIRED=()
BOARD_WHEEL_EXTRAS=()

board_check_vendor() { :; }

# board_boot_files ROOTFS BOOTDIR: fill the boot partition (FAT, the EFI system partition)
board_boot_files() {
    local rootfs=$1 boot=$2 kernel initrd
    kernel=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n1)
    initrd=$(find "$rootfs/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n1)
    [[ -n $kernel ]] || die "no kernel in the rootfs /boot (linux-image-arm64 not installed?)"
    [[ -n $initrd ]] || die "no initrd in the rootfs /boot (tiny-initramfs did not run?)"
    mkdir -p "$boot/EFI/BOOT" "$boot/loader/entries"
    cp "$rootfs/usr/lib/systemd/boot/efi/systemd-bootaa64.efi" "$boot/EFI/BOOT/BOOTAA64.EFI"
    cp "$kernel" "$boot/vmlinuz"
    cp "$initrd" "$boot/initrd.img"
    printf 'default appliance.conf\ntimeout 0\neditor no\n' >"$boot/loader/loader.conf"
    cat >"$boot/loader/entries/appliance.conf" <<ENTRY
title   edge-appliance $APPLIANCE_VERSION
linux   /vmlinuz
initrd  /initrd.img
options $(board_cmdline)
ENTRY
    log "kernel $(basename "$kernel"), initrd $(basename "$initrd") ($(du -k "$initrd" | cut -f1) KiB)"
}

# root=UUID= is resolved by tiny-initramfs; the kernel alone would not know it
board_cmdline() {
    echo "root=UUID=$ROOT_FS_UUID rootfstype=ext4 ro console=$BOARD_CONSOLE panic=10"
}

board_write_bootloader() { :; }
