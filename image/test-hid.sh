# The image test's HID walk (sourced by image/test, after the serial walk): a simulated USB HID
# UPS on the guest's own USB stack. examples/hid-ups-sim.rs, cross-built onto a small FAT disk
# (image/hid-sim-disk), runs in the guest (power-snitch-test-hid.service, test-only) as a
# FunctionFS gadget on dummy_hcd; its control lines come from the host on the virtio port
# powersnitch.hid. NUT's own usbhid-ups reads it; the page's API adopts it; the walk takes it
# through OL -> OB -> OB LB -> OL, a USB drop-out (the UDC unbound and bound again) and the
# unplug, each step a line in the guest's journal.
#
# image/test calls: hid_prepare (before the boot: the disk), hid_qemu_args (QEMU's options),
# hid_walk NAME (after the serial walk), hid_report (its times).

# step          after        timeout  pattern (grep -E on the journal; @NAME@ is the personality)
HID_EXPECTATIONS='
hid-ready       hid-start    600      power-snitch-test-hid\[[0-9]+\]: hid-ups-sim: ready for control lines
hid-gadget      hid-plug     60       power-snitch-test-hid\[[0-9]+\]: hid-ups-sim: plug @NAME@: @NAME@ @ID@ on dummy_udc
hid-usb         hid-plug     60       kernel: usb [0-9]+-[0-9.]+: New USB device found, idVendor=@VID@, idProduct=@PID@
hid-usbhid      hid-plug     60       kernel: hid-generic [0-9A-F:.]+: hiddev[0-9]+,hidraw[0-9]+: USB HID v1.10 Device \[@MFR@ @MODEL@\]
hid-check       hid-plug     90       systemd\[1\]: Start(ing|ed) power-snitch-check@add:[0-9]+-[0-9.]+:@VID@:@PID@
hid-verdict     hid-plug     120      power-snitch\[[0-9]+\]: UPS plugged in at [0-9]+-[0-9.]+: .*but no ups\.conf section serves it
hid-driver      hid-adopt    180      Connected to UPS \[@SECTION@\]
hid-ol          hid-adopt    180      upsc @SECTION@@localhost: ups.status=OL( CHRG)? battery.charge=100 battery.runtime=2700 input.voltage=121(\.0)?$
hid-ob          hid-ob       90       upsc @SECTION@@localhost: ups.status=OB( DISCHRG)? battery.charge=60 battery.runtime=1200 input.voltage=0(\.0)?$
hid-ob-agent    hid-ob       90       power-snitch\[[0-9]+\]: .*on battery: utility power is gone
hid-lb          hid-lb       90       upsc @SECTION@@localhost: ups.status=OB( DISCHRG)? LB battery.charge=8 battery.runtime=120 input.voltage=0(\.0)?$
hid-lb-agent    hid-lb       90       power-snitch\[[0-9]+\]: .*low battery: shutdown is near
hid-ol-again    hid-ol       90       upsc @SECTION@@localhost: ups.status=OL( CHRG)? battery.charge=30 battery.runtime=600 input.voltage=119(\.0)?$
hid-dropped     hid-drop     30       kernel: usb [0-9]+-[0-9.]+: USB disconnect
hid-fresh       hid-drop     180      upsc @SECTION@@localhost: ups.status=OL( CHRG)? battery.charge=55 battery.runtime=900 input.voltage=118(\.0)?$
hid-unplug      hid-unplug   90       power-snitch\[[0-9]+\]: configured UPS disappeared: \[@SECTION@\] \(usbhid-ups\)
'
hid_steps=()
hid_host_steps=()

# The personalities' identities, as the journal shows them (VID PID manufacturer product).
declare -A HID_ID=([cyberpower]="0764 0601 CPS CST135UC2")

# run_steps of image/test, for lines after the action only: the journal already has the serial
# walk's USB lines.
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
        RESULT[$step]=ok
        passed=$((passed + 1))
        printf '   %-12s ok    +%5ss  %s\n' "$step" "$(seconds "$since" "$t")" "$line"
      elif ! kill -0 "$qemu_pid" 2>/dev/null \
          || awk -v t="$t" -v s="$since" -v m="${TIMEOUT[$step]}" 'BEGIN { exit !(t - s > m) }'; then
        RESULT[$step]=FAIL
        failed=$((failed + 1))
        printf '   %-12s FAIL  nothing matched %s within %ss\n' "$step" "${PATTERN[$step]}" "${TIMEOUT[$step]}"
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
  local p need=()
  for p in mtools dosfstools; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
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

hid_walk() {
  local name=$1 id vid pid mfr model section
  read -r vid pid mfr model <<< "${HID_ID[$name]}"
  id="$vid:$pid"
  # The table, with this personality's words; each step is the personality's own.
  while read -r step after timeout pattern; do
    [ -n "$step" ] || continue
    hid_steps+=("$step")
    steps+=("$step")
    AFTER[$step]=$after
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

  local from
  # The simulator started with the port (at boot); what is sent before it reads is lost.
  hid_run_steps hid-start "$boot_started" 1
  note "HID: plug a simulated $name ($id) on the guest's dummy_hcd (FunctionFS)"
  from=$(hid_mark); hid_plugged=$(now)
  hid "plug $name"
  hid "status OL"
  hid "charge 100"
  hid "runtime 45"
  hid "input 121"
  hid_run_steps hid-plug "$hid_plugged" "$from"

  note "HID: adopt it through the page's API (POST /api/adopt, the only UPS without a section)"
  local preview adopted
  preview=$(api --data "mode=dry-run" "https://127.0.0.1:$page_port/api/adopt" 2>&1 || true)
  printf '%s\n' "$preview" > "$logs/hid-adopt-preview.json"
  if grep -q '"ok":true' <<< "$preview" && grep -q 'driver = usbhid-ups' <<< "$preview"; then
    host_step hid-adopt-preview yes "the preview names usbhid-ups"
  else
    host_step hid-adopt-preview no "$(head -c 600 <<< "$preview")"
  fi
  hid_host_steps+=(hid-adopt-preview hid-adopt)
  from=$(hid_mark); hid_adopt_started=$(now)
  adopted=$(api --data "mode=apply" "https://127.0.0.1:$page_port/api/adopt" 2>&1 || true)
  printf '%s\n' "$adopted" > "$logs/hid-adopt.json"
  # The section: the preview names it (the change's answer may come too late on a loaded
  # machine, while the change itself still goes through).
  section=$(sed -n 's/^{"mode":"[a-z-]*","ups":"\([^"]*\)".*/\1/p' <<< "$adopted")
  [ -n "$section" ] || section=$(sed -n 's/^{"mode":"[a-z-]*","ups":"\([^"]*\)".*/\1/p' <<< "$preview")
  if grep -q '"ok":true' <<< "$adopted" && grep -q '"verified":\["' <<< "$adopted" && [ -n "$section" ]; then
    host_step hid-adopt yes "adopted [$section] in $(seconds "$hid_adopt_started" "$(now)") s, verified live"
  else
    host_step hid-adopt no "$(head -c 600 <<< "$adopted")"
    section=${section:-none}
  fi
  for step in "${hid_steps[@]}"; do PATTERN[$step]=${PATTERN[$step]//@SECTION@/$section}; done
  # What upsd says of it, each change a journal line.
  hid "sh systemd-run --unit=power-snitch-test-upsc-hid -p SyslogIdentifier=power-snitch-test-upsc /usr/lib/power-snitch/test-upsc-vars $section@localhost ups.status battery.charge battery.runtime input.voltage"
  hid_run_steps hid-adopt "$hid_adopt_started" "$from"

  note "HID: mains lost (OB), then the battery low (OB LB), then mains back (OL)"
  from=$(hid_mark); hid_ob=$(now)
  hid "status OB"; hid "charge 60"; hid "runtime 20"; hid "input 0"
  hid_run_steps hid-ob "$hid_ob" "$from"
  from=$(hid_mark); hid_lb=$(now)
  hid "charge 8"; hid "runtime 2"; hid "status OB LB"
  hid_run_steps hid-lb "$hid_lb" "$from"
  from=$(hid_mark); hid_ol=$(now)
  hid "status OL"; hid "charge 30"; hid "runtime 10"; hid "input 119"
  hid_run_steps hid-ol "$hid_ol" "$from"

  note "HID: a USB drop-out (the UDC unbound, 5 s, bound again), then fresh data"
  from=$(hid_mark); hid_drop=$(now)
  hid "unplug"
  sleep 5
  hid "replug"
  hid_replugged=$(now)
  hid "charge 55"; hid "runtime 15"; hid "input 118"
  hid_run_steps hid-drop "$hid_drop" "$from"

  note "HID: unplug (the UDC unbound for good)"
  from=$(hid_mark); hid_unplugged=$(now)
  hid "unplug"
  hid_run_steps hid-unplug "$hid_unplugged" "$from"
}

hid_report() {
  [ ${#hid_steps[@]} -gt 0 ] || return 0
  for step in "${hid_host_steps[@]}"; do printf '  %-11s %-6s %s\n' "$step" "${RESULT[$step]:-skipped}" "from the host"; done
  echo "HID times:"
  echo "  plug to usbhid bound:          $(at hid-usbhid "$hid_plugged") s"
  echo "  plug to the check's verdict:   $(at hid-verdict "$hid_plugged") s"
  echo "  plug to monitored (OL):        $(at hid-ol "$hid_plugged") s (adopt to OL $(at hid-ol "$hid_adopt_started") s)"
  echo "  OB to upsd saying OB:          $(at hid-ob "$hid_ob") s"
  echo "  LB to upsd saying LB:          $(at hid-lb "$hid_lb") s"
  echo "  drop-out to fresh data:        $(at hid-fresh "$hid_replugged") s (from the unbind $(at hid-fresh "$hid_drop") s)"
  echo "  unplug to the critical line:   $(at hid-unplug "$hid_unplugged") s"
}
