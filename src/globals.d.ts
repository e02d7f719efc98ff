// Replaced at build time with the version being built (scripts/build.mjs).
declare const DRYDOCK_VERSION: string;
