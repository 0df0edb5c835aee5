# boot.scr of the rock5b image (edge-appliance @VERSION@; images/README.md, "A/B slots"), after
# RAUC's contrib/uboot.sh. RAUC's U-Boot backend writes, with fw_setenv from Linux:
#   BOOT_ORDER      slots in the order to try, primary first ("A B" or "B A")
#   BOOT_X_LEFT     boot attempts left for the slot (RAUC sets @ATTEMPTS@ on install and mark-good,
#                   0 on mark-bad); this script takes one per start.
# Partitions: 1 boot, 2 rootfs A, 3 rootfs B, 4 data; kernel and device tree come from the slot.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT @ATTEMPTS@
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 0

setenv bootargs
setenv slot_part
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${bootargs}" != "x"; then
    # a slot was chosen: skip the rest
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test 0x${BOOT_A_LEFT} -gt 0; then
      echo "appliance: slot A, ${BOOT_A_LEFT} attempts left"
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv slot_part 2
      setenv bootargs "root=PARTUUID=@PART_A@ @CMDLINE@ rauc.slot=A"
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test 0x${BOOT_B_LEFT} -gt 0; then
      echo "appliance: slot B, ${BOOT_B_LEFT} attempts left"
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv slot_part 3
      setenv bootargs "root=PARTUUID=@PART_B@ @CMDLINE@ rauc.slot=B"
    fi
  fi
done

if test -n "${bootargs}"; then
  saveenv
else
  echo "appliance: no slot has attempts left; slot A gets @ATTEMPTS@ again"
  setenv BOOT_A_LEFT @ATTEMPTS@
  saveenv
  reset
fi

load ${devtype} ${devnum}:${slot_part} ${kernel_addr_r} /boot/Image
load ${devtype} ${devnum}:${slot_part} ${fdt_addr_r} /boot/rk3588-rock-5b.dtb
booti ${kernel_addr_r} - ${fdt_addr_r}
