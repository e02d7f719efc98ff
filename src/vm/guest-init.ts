/**
 * The reference guest's scripts, run by busybox sh inside the VM: `/init` (PID 1) and the HTTP
 * handler behind port 8080. They are plain strings so the image builder can put them in the
 * initramfs and a reader can see everything the guest does in one place.
 *
 * Why busybox `nc -ll… -e` and not busybox `httpd`: httpd 1.35 runs a script only for URLs under
 * `/cgi-bin/` or with a configured suffix (`*.sh:/bin/sh`); a directory named `status` answers
 * `302 /status/`, and the reverse proxy (`P:`) that could map `/status` is not compiled into
 * Debian's busybox-static. `GET /status` must answer 200 itself, so a per-connection handler
 * (the same fork + sh a CGI costs) routes the few paths the guest serves.
 */

/** Where the guest serves HTTP (the VMM forwards a host port to it). */
export const GUEST_PORT = 8080;
export const HEALTH_PATH = '/healthz';
export const STATUS_PATH = '/status';

/** The guest's address on QEMU's user network (slirp's defaults: 10.0.2.0/24, gateway 10.0.2.2). */
export const GUEST_ADDRESS = '10.0.2.15/24';
export const GUEST_GATEWAY = '10.0.2.2';

/** busybox nc's listen() backlog is the number of -l flags given (see initScript). */
const LISTEN_BACKLOG = 64;

/** Path of the HTTP handler inside the initramfs. */
export const HTTP_HANDLER_PATH = 'bin/drydock-http';

/** Where the guest's modules live in the initramfs: flat, `<name>.ko`, loaded in the order given. */
export const GUEST_MODULE_DIR = 'lib/modules';

export interface GuestScriptOptions {
  /** `name@version`, reported as `image` by GET /status. */
  image: string;
  /** Module names (without `.ko`) to insmod from {@link GUEST_MODULE_DIR}, in dependency order. */
  modules: readonly string[];
}

/**
 * PID 1. It sets up the guest, starts the HTTP server, then blocks on the ACPI power button:
 * QEMU's `system_powerdown` presses it, and the guest powers off at once (nothing on a tmpfs
 * needs flushing), which makes QEMU exit. If PID 1 itself ever exits the kernel panics, and
 * `panic=-1` plus the VMM's `-no-reboot` turn that into a QEMU exit as well.
 */
export function initScript(options: GuestScriptOptions): string {
  assertShellWords(options.modules, 'module name');
  return `#!/bin/sh
# drydock reference guest (${options.image}): PID 1.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

log() { echo "drydock-guest: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/drydock
: > /run/drydock/requests

for module in ${options.modules.join(' ')}; do
  insmod /${GUEST_MODULE_DIR}/$module.ko || log "insmod $module failed"
done

# virtio_net creates eth0 while insmod runs; the wait only bounds a slow probe (5 s).
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ $tries -lt 50 ]; do
  usleep 100000
  tries=$((tries + 1))
done
ip link set lo up
ip addr add ${GUEST_ADDRESS} dev eth0 || log "eth0 has no address: the guest is unreachable"
ip link set eth0 up
ip route add default via ${GUEST_GATEWAY}

# Two or more -l: keep listening, run the handler once per connection. nc passes the count of
# -l to listen() as the backlog: with -ll (2) a burst of 6 requests already lost SYNs and
# waited a second for the retry; with ${LISTEN_BACKLOG}, 8 at once took 150 ms. (From 10 at once, some
# host connects to QEMU's user-network port forward still wait 1 s: that is slirp's listener.)
nc -${'l'.repeat(LISTEN_BACKLOG)} -p ${GUEST_PORT} -e /${HTTP_HANDLER_PATH} </dev/null >/dev/null 2>/dev/console &
log "serving on :${GUEST_PORT} (${options.image})"

# button.ko registers the ACPI power button as an input device named "Power Button".
power_button() {
  for event in /sys/class/input/event*; do
    if [ "$(cat "$event/device/name" 2>/dev/null)" = "Power Button" ]; then
      echo "/dev/input/\${event##*/}"
      return 0
    fi
  done
  return 1
}

if button=$(power_button); then
  # The device sends nothing until the button is pressed; one 24-byte struct input_event
  # (x86_64) is the press. Any event from this device means "power off".
  dd if="$button" of=/dev/null bs=24 count=1 2>/dev/null
  log "ACPI power button pressed: powering off"
  poweroff -f
fi
log "no ACPI power button found: system_powerdown will not stop this guest"
while true; do sleep 3600; done
`;
}

/**
 * One HTTP/1.0 exchange on stdin/stdout (nc runs it per connection):
 * `GET /status` and `GET /` answer the status JSON and count as requests, `GET /healthz`
 * answers `ok`, anything else 404 (or 405 for another method).
 */
export function httpHandlerScript(options: Pick<GuestScriptOptions, 'image'>): string {
  assertShellWords([options.image], 'image label');
  return `#!/bin/sh
# drydock reference guest (${options.image}): one HTTP request per run.
# nc hands the connection over as stdin, stdout and stderr: keep errors off the wire.
exec 2>/dev/console
CR=$(printf '\\r')
NL='
'
# A client that connects and sends nothing gets dropped after 10 s instead of holding a process.
read -r -t 10 method target _ || exit 0
# Read the headers up to the blank line: closing with unread bytes would send the client a reset.
while IFS= read -r -t 10 line; do
  [ -z "\${line%"$CR"}" ] && break
done
target=\${target%"$CR"}
path=\${target%%\\?*}

respond() {
  printf 'HTTP/1.0 %s\\r\\nContent-Type: %s\\r\\nContent-Length: %d\\r\\nCache-Control: no-store\\r\\nConnection: close\\r\\n\\r\\n%s' "$1" "$2" "\${#3}" "$3"
  exit 0
}

status() {
  # One byte appended per request (O_APPEND: concurrent handlers cannot lose one), so the
  # count is the file's size. No lock, so a killed handler cannot leave one behind.
  printf . >> /run/drydock/requests
  requests=$(stat -c %s /run/drydock/requests)
  read -r boot_id < /proc/sys/kernel/random/boot_id
  read -r uptime _ < /proc/uptime
  respond '200 OK' application/json "{\\"boot_id\\":\\"$boot_id\\",\\"uptime_s\\":$uptime,\\"requests\\":$requests,\\"image\\":\\"${options.image}\\"}$NL"
}

[ "$method" = GET ] || respond '405 Method Not Allowed' text/plain "only GET$NL"
case "$path" in
  ${STATUS_PATH} | /) status ;;
  ${HEALTH_PATH}) respond '200 OK' text/plain "ok$NL" ;;
  *) respond '404 Not Found' text/plain "not found$NL" ;;
esac
`;
}

/** The scripts interpolate these unquoted (and into JSON): allow only characters that need no escaping. */
function assertShellWords(words: readonly string[], what: string): void {
  for (const word of words) {
    if (!/^[A-Za-z0-9._+@-]+$/.test(word)) throw new Error(`${what} "${word}" may use only letters, digits and . _ + @ -`);
  }
}
