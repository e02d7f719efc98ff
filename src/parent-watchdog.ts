/**
 * Processes started by a launcher (`drydock demo`, the test fleet) get DRYDOCK_PARENT_PID; if
 * that launcher dies without cleaning up (kill -9), they shut themselves down instead of
 * lingering. Production processes (systemd) never set it.
 */
export const PARENT_PID_ENV = 'DRYDOCK_PARENT_PID';

export function exitWithParent(shutdown: (reason: string) => void): void {
  const parent = Number(process.env[PARENT_PID_ENV]);
  if (!Number.isInteger(parent) || parent <= 1) return;
  const timer = setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      clearInterval(timer);
      shutdown(`launcher ${parent} is gone`);
    }
  }, 1000);
  timer.unref();
}
