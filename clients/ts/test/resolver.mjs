// Node resolve hook for the round trip: a relative import without a file extension (as the
// generated bindings write them, for bundlers) resolves to the `.js` file tsc emitted, the
// way Vite, webpack or esbuild resolve it in a frontend build.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND" && specifier.startsWith(".") && !specifier.endsWith(".js")) {
      return nextResolve(`${specifier}.js`, context);
    }
    throw error;
  }
}
