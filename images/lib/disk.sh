# shellcheck shell=bash
# shellcheck disable=SC2034  # DISK_LAYOUT is read by build_image.sh
# The disk image: GPT (boot, rootfs A, rootfs B, data) written into a plain file; file systems made
# from folders (mkfs.ext4 -d, mkfs.vfat + mcopy) and placed with dd. No loop devices, no mounts.
# Slot A holds the built rootfs; slot B starts empty (zeros, sparse) and receives the first update.

# Fixed identifiers: every image of a board has the same ones, so boot entries can name them.
DISK_GUID=8f3a4d52-1b6e-4c1a-9d0b-5e7a0c2f6b10
BOOT_PART_UUID=8f3a4d52-1b6e-4c1a-9d0b-5e7a0c2f6b11
ROOT_A_PART_UUID=8f3a4d52-1b6e-4c1a-9d0b-5e7a0c2f6b12
ROOT_B_PART_UUID=8f3a4d52-1b6e-4c1a-9d0b-5e7a0c2f6b14
DATA_PART_UUID=8f3a4d52-1b6e-4c1a-9d0b-5e7a0c2f6b13
BOOT_FS_ID=A99E0001            # FAT volume id: UUID=A99E-0001
# The rootfs UUID is the same in both slots (RAUC copies the file system image byte for byte), so
# nothing names the root file system by UUID: the boot loader passes the slot's partition.
ROOT_FS_UUID=5d1c7b0e-3f6a-4e58-9a2d-7c4b1e0f9a01
DATA_FS_UUID=5d1c7b0e-3f6a-4e58-9a2d-7c4b1e0f9a02
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_ROOT_ARM64=B921B045-1DF0-41C3-AF44-4C6F280D3FAE
TYPE_LINUX_DATA=0FC63DAF-8483-4772-8E79-3D69D8477DE4

BOOT_MIB=128
DATA_MIB_MIN=64
# Each rootfs slot has this fixed size: every later update must fit in it. The file system image
# itself is content + 10 % + ROOT_FREE_MIB (logs, apt) and RAUC grows it to the slot (resize=true).
SLOT_MIB=${SLOT_MIB:-3072}
ROOT_FREE_MIB=${ROOT_FREE_MIB:-256}
# ext4 features a 5.10 vendor kernel and bookworm's e2fsck both understand
EXT4_OPTIONS=(-q -F -t ext4 -O '^orphan_file,^metadata_csum_seed' -E 'lazy_itable_init=0,lazy_journal_init=0')

_used_mib() { du -s --block-size=1M "$1" | cut -f1; }

# disk_fstab: /etc/fstab of the image. No line for "/": the slot is mounted read-write by the
# initramfs/kernel from the boot loader's root= and rootflags=.
# /etc/appliance (config.toml) is a bind mount of a folder on the data partition, so the settings
# survive updates and rollbacks; /boot/firmware (GRUB's environment) mounts on first access.
disk_fstab() {
    cat <<FSTAB
# <file system>                              <mount point>        <type> <options>                                   <dump> <pass>
UUID=$DATA_FS_UUID  /var/lib/appliance   ext4   defaults,noatime,commit=60,nodev,nosuid       0 2
/var/lib/appliance/etc                      /etc/appliance       none   bind,x-systemd.requires-mounts-for=/var/lib/appliance  0 0
UUID=${BOOT_FS_ID:0:4}-${BOOT_FS_ID:4:4}                              /boot/firmware       vfat   x-systemd.automount,x-systemd.idle-timeout=30,nofail,umask=0077  0 0
FSTAB
}

# disk_rootfs_image ROOTDIR OUT: the ext4 image of one slot (also the payload of the RAUC bundle)
disk_rootfs_image() {
    local rootdir=$1 out=$2 mib
    mib=$(($(_used_mib "$rootdir") * 11 / 10 + ROOT_FREE_MIB))
    ((mib <= SLOT_MIB)) || die "the rootfs needs $mib MiB, more than a slot ($SLOT_MIB MiB; SLOT_MIB=)"
    rm -f "$out"
    mkfs.ext4 "${EXT4_OPTIONS[@]}" -L rootfs -U "$ROOT_FS_UUID" -d "$rootdir" "$out" "${mib}M" >/dev/null ||
        die "mkfs.ext4 of the rootfs failed"
    ROOTFS_IMAGE_MIB=$mib
}

# disk_build IMAGE BOOTDIR ROOTFS_IMAGE DATADIR DATA_OWNER(uid:gid)
disk_build() {
    local image=$1 bootdir=$2 rootimg=$3 datadir=$4 owner=$5
    local first=$BOARD_FIRST_PARTITION_MIB data_mib total
    data_mib=$(($(_used_mib "$datadir") + DATA_MIB_MIN))
    total=$((first + BOOT_MIB + 2 * SLOT_MIB + data_mib + 1))
    log "layout: ${first} MiB gap | boot ${BOOT_MIB} | rootfs A ${SLOT_MIB} (image ${ROOTFS_IMAGE_MIB}) | rootfs B ${SLOT_MIB} (empty) | data ${data_mib} MiB (grows at first boot) = ${total} MiB"

    rm -f "$image"
    truncate -s "${total}M" "$image"
    _partition_table "$image" "$first" "$data_mib"

    mkfs.vfat -F 32 -n BOOT -i "$BOOT_FS_ID" -C "$WORK/boot.img" $((BOOT_MIB * 1024)) >/dev/null
    mcopy -s -p -m -i "$WORK/boot.img" "$bootdir"/* ::/
    mkfs.ext4 "${EXT4_OPTIONS[@]}" -L appliance-data -U "$DATA_FS_UUID" -E "root_owner=$owner" \
        -d "$datadir" "$WORK/data.img" "${data_mib}M" >/dev/null || die "mkfs.ext4 of the data partition failed"

    _disk_place "$WORK/boot.img" "$image" "$first"
    _disk_place "$rootimg" "$image" $((first + BOOT_MIB))
    _disk_place "$WORK/data.img" "$image" $((first + BOOT_MIB + 2 * SLOT_MIB))
    rm -f "$WORK/boot.img" "$WORK/data.img"
    # inputs only (no sizes measured from the content), so that the manifest stays reproducible
    DISK_LAYOUT="gpt first=${first}MiB boot=${BOOT_MIB}MiB,vfat rootfs-a=${SLOT_MIB}MiB,ext4 rootfs-b=${SLOT_MIB}MiB,empty data=grows,ext4"
}

_partition_table() {
    local image=$1 first=$2 data_mib=$3 s=2048 # sectors per MiB
    local a=$((first + BOOT_MIB)) b=$((first + BOOT_MIB + SLOT_MIB)) d=$((first + BOOT_MIB + 2 * SLOT_MIB))
    sfdisk --quiet "$image" <<TABLE || die "sfdisk could not write the partition table"
label: gpt
label-id: $DISK_GUID
unit: sectors

start=$((first * s)), size=$((BOOT_MIB * s)), type=$TYPE_ESP, uuid=$BOOT_PART_UUID, name="boot", attrs="LegacyBIOSBootable"
start=$((a * s)), size=$((SLOT_MIB * s)), type=$TYPE_ROOT_ARM64, uuid=$ROOT_A_PART_UUID, name="rootfs-a"
start=$((b * s)), size=$((SLOT_MIB * s)), type=$TYPE_ROOT_ARM64, uuid=$ROOT_B_PART_UUID, name="rootfs-b"
start=$((d * s)), size=$((data_mib * s)), type=$TYPE_LINUX_DATA, uuid=$DATA_PART_UUID, name="data"
TABLE
}

_disk_place() { # _disk_place PART IMAGE OFFSET_MIB
    dd if="$1" of="$2" bs=1M seek="$3" conv=notrunc,sparse status=none || die "dd of $1 failed"
}
