// The go-ahead a model-file process (child.ts, export_child.ts) waits for before it writes or prints anything: the
// `kiln` command type-checks the file at the same time and sends it only when the check found no error.

/** Waits for the parent's `{ type: 'go' }`; exits when the parent goes away first. */
export function awaitGoAhead(): Promise<void> {
  return new Promise((resolve) => {
    process.channel?.ref(); // the channel alone keeps this process alive while it waits
    const onMessage = (m: { type?: string }) => {
      if (m.type !== 'go') return;
      process.off('message', onMessage);
      process.channel?.unref();
      resolve();
    };
    process.on('message', onMessage);
    process.once('disconnect', () => process.exit(1));
  });
}
