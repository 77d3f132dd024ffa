// Page state shared by the router and the pages.

let generation = 0;

/** Starts a new page; returns its generation. */
export const nextPage = () => ++generation;

/** Whether a page's async work still belongs to the page on screen. */
export const current = (gen) => gen === generation;

/** Replaces the fragment's query (a new history entry unless push is false). */
export function setQuery(query, { push = true } = {}) {
  const path = (location.hash.replace(/^#/, '') || '/').split('?')[0];
  const qs = query.toString();
  const hash = `#${path}${qs ? `?${qs}` : ''}`;
  if (push) location.hash = hash;
  else history.replaceState(null, '', hash);
}
