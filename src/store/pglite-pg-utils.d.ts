// node-postgres's own parameter conversion, which @types/pg does not describe. The embedded
// engine's Db runs it in the operator's thread before a statement crosses to the worker.
declare module 'pg/lib/utils.js' {
  const utils: {
    /** A JS value as node-postgres sends it: text, a Buffer (bytea) or null. */
    prepareValue(value: unknown): string | Buffer | null;
  };
  export default utils;
}
