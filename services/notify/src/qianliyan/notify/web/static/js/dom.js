// Building the page from data without ever parsing data as HTML: text is set as text.

/**
 * A DOM element. Attributes that are element properties are set as properties (className,
 * hidden, disabled, …), others (data-*, aria-*) as attributes; children are nodes or text;
 * null, undefined and false children are skipped.
 */
export function element(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (name in el && !name.startsWith("data-") && !name.startsWith("aria-")) el[name] = value;
    else el.setAttribute(name, value);
  }
  el.append(
    ...children.filter((child) => child !== null && child !== undefined && child !== false),
  );
  return el;
}

/**
 * Replace the children of `parent` (null ones skipped), keeping keyboard focus and the text
 * cursor on the element with the same data-focus-key: a re-render must not throw the
 * dispatcher out of what they are typing.
 */
export function replaceKeepingFocus(parent, ...children) {
  const focused = parent.contains(document.activeElement) ? document.activeElement : null;
  const key = focused?.dataset?.focusKey;
  const selection =
    focused && "selectionStart" in focused ? [focused.selectionStart, focused.selectionEnd] : null;
  parent.replaceChildren(...children.filter(Boolean));
  if (!key) return;
  const again = parent.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
  if (!again) return;
  again.focus({ preventScroll: true });
  if (selection) {
    try {
      again.setSelectionRange(...selection);
    } catch {
      // a <select> or a button has no text selection
    }
  }
}
