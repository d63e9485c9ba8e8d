# The image test's HID walk (sourced by image/test, after the serial walk): simulated USB HID
# UPSes on the guest's own USB stack. examples/hid-ups-sim.rs, cross-built onto a small FAT disk
# (image/hid-sim-disk), runs in the guest (power-snitch-test-hid.service, test-only) as a
# FunctionFS gadget on dummy_hcd; its control lines come from the host on the virtio port
# powersnitch.hid. For each personality in turn (--hid NAME,NAME...): plugged, udev's check
# names it, its report descriptor read from sysfs and from the device agree
# (image/hid-descriptor-check), the page's API adopts it, NUT's own usbhid-ups serves it through
# OL -> OB -> OB LB -> OL; the first one also has a USB drop-out (the UDC unbound and bound
# again); each is unplugged at its end. Each step is a line in the guest's journal; its name is
# the personality's, then the step's (`apc-ob`).
#
# image/test calls: hid_prepare (before the boot: the disk), hid_qemu_args (QEMU's options),
# hid_walk NAMES (after the serial walk), hid_report (its times). With --capture DIR, each
# personality's sysfs tree is captured as it is plugged (image/capture-usb-fixtures) into
# DIR/captured-NAME.

# step      after     timeout  pattern (grep -E on the journal; @NAME@ the personality)
HID_EXPECTATIONS='
gadget      plug      60       power-snitch-test-hid\[[0-9]+\]: hid-ups-sim: plug @NAME@: @NAME@ @ID@ on dummy_udc
usb         plug      60       kernel: usb [0-9]+-[0-9.]+: New USB device found, idVendor=@VID@, idProduct=@PID@
usbhid      plug      60       kernel: hid-generic [0-9A-F:.]+: hiddev[0-9]+,hidraw[0-9]+: USB HID v[0-9.]+ Device \[@MFR@ @MODEL@\]
check       plug      90       systemd\[1\]: Start(ing|ed) power-snitch-check@add:[0-9]+-[0-9.]+:@VID@:@PID@
verdict     plug      120      power-snitch\[[0-9]+\]: UPS plugged in at [0-9]+-[0-9.]+: .*but no ups\.conf section serves it
descriptor  desc      120      hid-descriptor [0-9]+-[0-9.]+: sysfs and the device agree: [0-9]+ bytes CRC-32 [0-9a-f]{8}$
driver      adopt     180      Connected to UPS \[@SECTION@\]
ol          adopt     180      upsc @SECTION@@localhost: ups.status=OL( CHRG)? battery.charge=100 battery.runtime=2700 input.voltage=121(\.0)?$
ob          ob        90       upsc @SECTION@@localhost: ups.status=OB( DISCHRG)? battery.charge=60 battery.runtime=1200 input.voltage=0(\.0)?$
ob-agent    ob        90       power-snitch\[[0-9]+\]: (.* )?@SECTION@(@[^ ]+)?: on battery: utility power is gone
lb          lb        90       upsc @SECTION@@localhost: ups.status=OB( DISCHRG)? LB battery.charge=8 battery.runtime=120 input.voltage=0(\.0)?$
lb-agent    lb        90       power-snitch\[[0-9]+\]: (.* )?@SECTION@(@[^ ]+)?: low battery: shutdown is near
ol-again    ol        90       upsc @SECTION@@localhost: ups.status=OL( CHRG)? battery.charge=30 battery.runtime=600 input.voltage=119(\.0)?$
dropped     drop      30       kernel: usb [0-9]+-[0-9.]+: USB disconnect
fresh       drop      180      upsc @SECTION@@localhost: ups.status=OL( CHRG)? battery.charge=55 battery.runtime=900 input.voltage=118(\.0)?$
unplug      unplug    90       power-snitch\[[0-9]+\]: configured UPS disappeared: \[@SECTION@\] \(usbhid-ups\)
'
hid_steps=()
hid_host_steps=()
hid_names=()
hid_capture=
declare -A HID_LINE HID_T

# The personalities' identities, as the journal shows them (VID PID manufacturer product).
declare -A HID_ID=(
  [cyberpower]="0764 0501 CPS CP1500AVRLCDa"
  [apc]="051d 0002 American Power Conversion Back-UPS ES 850G2 FW:938.a2 .I USB FW:a2"
  [eaton]="0463 ffff EATON Eaton 5SC"
  [cyberpower-cst135]="0764 0601 CPS CST135UC2"
)

# Watches the journal after line $3 for the steps of action $1 (its host time $2), all at once,
# until each has its line or its timeout has passed (the journal already has the serial walk's
# USB lines, and the earlier personalities').
hid_run_steps() {
  local action=$1 since=$2 from=$3 step line t pending=()
  for step in "${hid_steps[@]}"; do [ "${AFTER[$step]}" = "$action" ] && pending+=("$step"); done
  while [ ${#pending[@]} -gt 0 ]; do
    local still=()
    for step in "${pending[@]}"; do
      line=$(tail -n "+$from" "$journal" | grep -E -m 1 -e "${PATTERN[$step]}" || true)
      t=$(now)
      if [ -n "$line" ]; then
        HOST_AT[$step]=$t
        GUEST_AT[$step]=$(sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p' <<< "$line")
        HID_LINE[$step]=$line
        RESULT[$step]=ok
        passed=$((passed + 1))
        printf '   %-20s ok    +%5ss  %s\n' "$step" "$(seconds "$since" "$t")" "$line"
      elif ! kill -0 "$qemu_pid" 2>/dev/null \
          || awk -v t="$t" -v s="$since" -v m="${TIMEOUT[$step]}" 'BEGIN { exit !(t - s > m) }'; then
        RESULT[$step]=FAIL
        failed=$((failed + 1))
        printf '   %-20s FAIL  nothing matched %s within %ss\n' "$step" "${PATTERN[$step]}" "${TIMEOUT[$step]}"
      else
        still+=("$step")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    [ ${#pending[@]} -eq 0 ] || sleep 0.5
  done
}

# The journal's next line number.
hid_mark() { echo $(($(wc -l < "$journal") + 1)); }

hid_prepare() {
  note "the simulated USB HID UPS: image/hid-sim-disk (cargo zigbuild --example hid-ups-sim)"
  "$repo/scripts/need" mtools dosfstools
  "$here/hid-sim-disk" "$run/hid-sim.img" --arch "$arch"
}

hid_qemu_args() {
  hid_qemu=(-drive if=none,id=hidsim,file="$run/hid-sim.img",format=raw,readonly=on
    -device virtio-blk-pci,drive=hidsim
    -chardev socket,id=hidctl,path="$run/hid.sock",server=on,wait=off
    -device virtserialport,bus=vser.0,chardev=hidctl,name=powersnitch.hid)
}

# One control line to the simulator (it answers in the journal).
hid() {
  printf '%s\n' "$*" >> "$logs/hid-control.log"
  printf '%s\n' "$*" | socat -t 1 - UNIX-CONNECT:"$run/hid.sock" >/dev/null 2>&1 || true
}

# Each of NAMES (comma-separated) is a personality; image/test asks before it boots.
hid_known() {
  local name names
  IFS=, read -r -a names <<< "$1"
  for name in "${names[@]}"; do
    [ -n "${HID_ID[$name]:-}" ] || { echo "image/test: no HID personality $name (${!HID_ID[*]})" >&2; return 1; }
  done
}

# The table's steps for personality $1 (without the drop-out unless $2 is yes).
hid_table() {
  local name=$1 drop=$2 vid pid mfr model id step after timeout pattern
  read -r vid pid mfr model <<< "${HID_ID[$name]}"
  id="$vid:$pid"
  while read -r step after timeout pattern; do
    [ -n "$step" ] || continue
    [ "$after" != drop ] || [ "$drop" = yes ] || continue
    step="$name-$step"
    hid_steps+=("$step")
    steps+=("$step")
    AFTER[$step]="$name:$after"
    TIMEOUT[$step]=$timeout
    WHICH[$step]="hid $name"
    pattern=${pattern//@NAME@/$name}
    pattern=${pattern//@ID@/$id}
    pattern=${pattern//@VID@/$vid}
    pattern=${pattern//@PID@/$pid}
    pattern=${pattern//@MFR@/$mfr}
    pattern=${pattern//@MODEL@/$model}
    PATTERN[$step]=$pattern
  done <<< "$HID_EXPECTATIONS"
}

# The capture of USB device $2's sysfs tree, as personality $1 plugged it, into
# $hid_capture/captured-$1 (the base64 tarball image/capture-usb-fixtures prints, from the
# journal after line $3).
hid_capture_tree() {
  local name=$1 dev=$2 from=$3 dest tries=0
  dest=$hid_capture/captured-$name
  hid "sh sh /run/power-snitch-test-hid/capture-usb-fixtures $dev"
  while ! tail -n "+$from" "$journal" | grep -q 'hid-ups-sim: | capture-usb-fixtures: end'; do
    tries=$((tries + 1))
    [ "$tries" -lt 240 ] || { echo "   capture of $dev: no end line"; return 0; }
    sleep 0.5
  done
  rm -rf "$dest.new"
  mkdir -p "$dest.new"
  tail -n "+$from" "$journal" | grep -F 'hid-ups-sim: | ' \
    | sed -n '/capture-usb-fixtures: begin/,/capture-usb-fixtures: end/p' \
    | sed -e '1d;$d' -e 's/.*hid-ups-sim: | //' | base64 -d | tar -C "$dest.new" -xzf -
  # What the tree's README and probe.expected say is kept; the kernel's part is new.
  for f in README.md probe.expected; do [ ! -f "$dest/$f" ] || cp "$dest/$f" "$dest.new/$f"; done
  rm -rf "$dest"
  mv "$dest.new" "$dest"
  echo "   captured $dev into $dest"
}

# The USB device a journal line after line $2 names as new with VID $1 (`3-1`), within 60 s.
hid_new_device() {
  local vid=$1 from=$2 dev tries=0
  while :; do
    dev=$(tail -n "+$from" "$journal" | sed -n "s/.*kernel: usb \([0-9]*-[0-9.]*\): New USB device found, idVendor=$vid.*/\1/p" | tail -n 1)
    [ -z "$dev" ] || { echo "$dev"; return 0; }
    tries=$((tries + 1))
    [ "$tries" -lt 120 ] || return 1
    sleep 0.5
  done
}

# With --capture, at the walk's end: two units of personality $1 without serial numbers, one
# on each UDC (identical twins, told apart by their port), into captured-twins.
hid_capture_twins() {
  [ -n "$hid_capture" ] || return 0
  local name=$1 from a b
  note "HID: two identical $name units without serial numbers (the capture of twins)"
  from=$(hid_mark)
  hid "plug $name no-serial"
  a=$(hid_new_device "${HID_ID[$name]%% *}" "$from") || { echo "   capture: the first twin did not appear"; return 0; }
  from=$(hid_mark)
  hid "plug $name no-serial"
  b=$(hid_new_device "${HID_ID[$name]%% *}" "$from") || { echo "   capture: the second twin did not appear"; return 0; }
  sleep 10  # usbhid and udev (the nodes' owners) have done their part
  hid_capture_tree twins "$a $b" "$(hid_mark)"
}

# With --capture, after the twins: QEMU's USB keyboard and its FTDI FT232 adapter (usb-serial,
# with nothing behind it) behind QEMU's USB hub on the xHCI, into captured-keyboard and
# captured-ftdi-serial: a HID device that is no UPS, and a USB-serial port with udev's links.
hid_capture_qemu_devices() {
  [ -n "$hid_capture" ] || return 0
  local from kbd ftdi
  note "capture: QEMU's USB keyboard and FTDI adapter behind a USB hub on the xHCI"
  from=$(hid_mark)
  monitor "device_add usb-hub,id=cap-hub,bus=xhci.0,port=2"
  sleep 5
  monitor "device_add usb-kbd,id=cap-kbd,bus=xhci.0,port=2.1"
  kbd=$(hid_new_device 0627 "$from") || { echo "   capture: the keyboard did not appear"; return 0; }
  monitor "chardev-add null,id=cap-null"
  monitor "device_add usb-serial,chardev=cap-null,id=cap-ftdi,bus=xhci.0,port=2.2,serial=A50285BI,always-plugged=on"
  ftdi=$(hid_new_device 0403 "$from") || { echo "   capture: the adapter did not appear"; return 0; }
  sleep 10  # the drivers and udev (the nodes' owners, /dev/serial) have done their part
  hid_capture_tree keyboard "$kbd" "$(hid_mark)"
  hid_capture_tree ftdi-serial "$ftdi" "$(hid_mark)"
}

# One personality: plug, the check, the descriptor, adopt, OL -> OB -> OB LB -> OL, (the
# drop-out), unplug.
hid_one() {
  local name=$1 drop=$2 from section dev preview adopted step
  note "HID $name: plug a simulated $name (${HID_ID[$name]}) on the guest's dummy_hcd (FunctionFS)"
  from=$(hid_mark); HID_T[$name:plug]=$(now)
  hid "plug $name"
  hid "status OL"
  hid "charge 100"
  hid "runtime 45"
  hid "input 121"
  hid_run_steps "$name:plug" "${HID_T[$name:plug]}" "$from"
  dev=$(sed -n 's/.*kernel: usb \([0-9]*-[0-9.]*\): New USB device found.*/\1/p' <<< "${HID_LINE[$name-usb]:-}")
  dev=${dev:-none}

  note "HID $name: its report descriptor from sysfs and from the device (usbhid unbound)"
  from=$(hid_mark); HID_T[$name:desc]=$(now)
  hid "sh sh /run/power-snitch-test-hid/hid-descriptor-check $dev"
  hid_run_steps "$name:desc" "${HID_T[$name:desc]}" "$from"
  if [ -n "$hid_capture" ] && [ "$dev" != none ]; then
    hid_capture_tree "$name" "$dev" "$(hid_mark)"
  fi

  note "HID $name: adopt it through the page's API (POST /api/adopt, the only UPS without a section)"
  preview=$(api --data "mode=dry-run" "https://127.0.0.1:$page_port/api/adopt" 2>&1 || true)
  printf '%s\n' "$preview" > "$logs/hid-$name-adopt-preview.json"
  if grep -q '"ok":true' <<< "$preview" && grep -q 'driver = usbhid-ups' <<< "$preview"; then
    host_step "$name-preview" yes "the preview names usbhid-ups"
  else
    host_step "$name-preview" no "$(head -c 600 <<< "$preview")"
  fi
  hid_host_steps+=("$name-preview" "$name-adopt")
  from=$(hid_mark); HID_T[$name:adopt]=$(now)
  adopted=$(api --data "mode=apply" "https://127.0.0.1:$page_port/api/adopt" 2>&1 || true)
  printf '%s\n' "$adopted" > "$logs/hid-$name-adopt.json"
  # The section: the preview names it (the change's answer may come too late on a loaded
  # machine, while the change itself still goes through).
  section=$(sed -n 's/^{"mode":"[a-z-]*","ups":"\([^"]*\)".*/\1/p' <<< "$adopted")
  [ -n "$section" ] || section=$(sed -n 's/^{"mode":"[a-z-]*","ups":"\([^"]*\)".*/\1/p' <<< "$preview")
  if grep -q '"ok":true' <<< "$adopted" && grep -q '"verified":\["' <<< "$adopted" && [ -n "$section" ]; then
    host_step "$name-adopt" yes "adopted [$section] in $(seconds "${HID_T[$name:adopt]}" "$(now)") s, verified live"
  else
    host_step "$name-adopt" no "$(head -c 600 <<< "$adopted")"
    section=${section:-none}
  fi
  for step in "${hid_steps[@]}"; do
    [[ "$step" == "$name-"* ]] && PATTERN[$step]=${PATTERN[$step]//@SECTION@/$section}
  done
  # What upsd says of it, each change a journal line.
  hid "sh systemd-run --unit=power-snitch-test-upsc-$section -p SyslogIdentifier=power-snitch-test-upsc /usr/lib/power-snitch/test-upsc-vars $section@localhost ups.status battery.charge battery.runtime input.voltage"
  hid_run_steps "$name:adopt" "${HID_T[$name:adopt]}" "$from"

  note "HID $name: mains lost (OB), then the battery low (OB LB), then mains back (OL)"
  from=$(hid_mark); HID_T[$name:ob]=$(now)
  hid "status OB"; hid "charge 60"; hid "runtime 20"; hid "input 0"
  hid_run_steps "$name:ob" "${HID_T[$name:ob]}" "$from"
  from=$(hid_mark); HID_T[$name:lb]=$(now)
  hid "charge 8"; hid "runtime 2"; hid "status OB LB"
  hid_run_steps "$name:lb" "${HID_T[$name:lb]}" "$from"
  from=$(hid_mark); HID_T[$name:ol]=$(now)
  hid "status OL"; hid "charge 30"; hid "runtime 10"; hid "input 119"
  hid_run_steps "$name:ol" "${HID_T[$name:ol]}" "$from"

  if [ "$drop" = yes ]; then
    note "HID $name: a USB drop-out (the UDC unbound, 5 s, bound again), then fresh data"
    from=$(hid_mark); HID_T[$name:drop]=$(now)
    hid "unplug"
    sleep 5
    hid "replug"
    HID_T[$name:replugged]=$(now)
    hid "charge 55"; hid "runtime 15"; hid "input 118"
    hid_run_steps "$name:drop" "${HID_T[$name:drop]}" "$from"
  fi

  note "HID $name: unplug (the UDC unbound for good)"
  from=$(hid_mark); HID_T[$name:unplug]=$(now)
  hid "unplug"
  hid_run_steps "$name:unplug" "${HID_T[$name:unplug]}" "$from"
  # Its UDC is free again for the next personality.
  hid "sh systemctl stop power-snitch-test-upsc-$section"
}

# The walk: NAMES, comma-separated; the first one has the drop-out.
hid_walk() {
  local name first=yes
  IFS=, read -r -a hid_names <<< "$1"
  # The simulator started with the port (at boot); what is sent before it reads is lost.
  hid_steps+=(hid-ready); steps+=(hid-ready)
  AFTER[hid-ready]=hid-start; TIMEOUT[hid-ready]=600; WHICH[hid-ready]=hid
  PATTERN[hid-ready]='power-snitch-test-hid\[[0-9]+\]: hid-ups-sim: ready for control lines'
  for name in "${hid_names[@]}"; do
    hid_table "$name" "$first"
    first=no
  done
  hid_run_steps hid-start "$boot_started" 1
  first=yes
  for name in "${hid_names[@]}"; do
    hid_one "$name" "$first"
    first=no
  done
  hid_capture_twins "${hid_names[0]}"
  hid_capture_qemu_devices
}

hid_report() {
  [ ${#hid_steps[@]} -gt 0 ] || return 0
  local name
  for step in "${hid_host_steps[@]}"; do printf '  %-20s %-6s %s\n' "$step" "${RESULT[$step]:-skipped}" "from the host"; done
  echo "HID times:"
  for name in "${hid_names[@]}"; do
    echo "  $name (${HID_ID[$name]}):"
    echo "    plug to usbhid bound:          $(at "$name-usbhid" "${HID_T[$name:plug]}") s"
    echo "    plug to the check's verdict:   $(at "$name-verdict" "${HID_T[$name:plug]}") s"
    echo "    descriptor, sysfs and device:  $(at "$name-descriptor" "${HID_T[$name:desc]}") s"
    echo "    plug to monitored (OL):        $(at "$name-ol" "${HID_T[$name:plug]}") s (adopt to OL $(at "$name-ol" "${HID_T[$name:adopt]}") s)"
    echo "    OB to upsd saying OB:          $(at "$name-ob" "${HID_T[$name:ob]}") s"
    echo "    LB to upsd saying LB:          $(at "$name-lb" "${HID_T[$name:lb]}") s"
    [ -z "${HID_T[$name:drop]:-}" ] || \
    echo "    drop-out to fresh data:        $(at "$name-fresh" "${HID_T[$name:replugged]}") s (from the unbind $(at "$name-fresh" "${HID_T[$name:drop]}") s)"
    echo "    unplug to the critical line:   $(at "$name-unplug" "${HID_T[$name:unplug]}") s"
  done
}
