// PGlite is the one package the bundle does not contain (it loads its WASM and data files from
// its own directory), so `dist/drydock.mjs` copied alone has no embedded engine. Saying so,
// with the two ways out, beats Node's bare "Cannot find package".

const ENGINE_PACKAGE = '@electric-sql/pglite';

export class EmbeddedEngineMissing extends Error {
  constructor(cause: unknown) {
    super(
      `the embedded database engine (${ENGINE_PACKAGE}) is not installed beside this drydock; ` +
        'install drydock as a package (`npm install -g drydock-<version>.tgz`) or pass --database-url for a PostgreSQL server',
      { cause },
    );
  }
}

/** Runs `load` (a dynamic import of PGlite), turning "module not found" into EmbeddedEngineMissing. */
export async function loadEmbeddedEngine<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(ENGINE_PACKAGE)) {
      throw new EmbeddedEngineMissing(error);
    }
    throw error;
  }
}
