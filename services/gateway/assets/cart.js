// The cart, kept in the browser's localStorage so that it survives a reload (and is shared by
// the tabs of one browser). Lines: { dishId, name, price: {amount, currency}, quantity, note,
// options: [{groupId, choiceId, group, choice, priceDelta}] }; `price` includes the options'
// deltas. The server never trusts it: the orders service prices each order from its own menu.

const KEY = 'brigade.cart.v1';
const MAX_QUANTITY = 50;
const listeners = new Set();

function read() {
  try {
    const lines = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(lines) ? lines.filter((l) => l && l.dishId && l.quantity > 0) : [];
  } catch {
    return [];
  }
}

function write(lines) {
  try {
    localStorage.setItem(KEY, JSON.stringify(lines));
  } catch {
    // Private mode or full storage: the cart lasts as long as the page.
  }
  for (const listener of listeners) listener(lines);
}

export function cartLines() {
  return read();
}

export function cartCount() {
  return read().reduce((n, line) => n + line.quantity, 0);
}

export function cartTotal() {
  const lines = read();
  return {
    amount: lines.reduce((sum, l) => sum + (l.price?.amount || 0) * l.quantity, 0),
    currency: lines[0]?.price?.currency || 'EUR',
  };
}

/** The picked options of a line as one comparable string. */
export function optionsKey(options) {
  return (options || []).map((o) => `${o.groupId}/${o.choiceId}`).sort().join(',');
}

/** Adds dishes (same dish, same options and same note: one line). */
export function addToCart(item, quantity = 1) {
  const lines = read();
  const note = item.note || '';
  const options = item.options || [];
  const key = optionsKey(options);
  const line = lines.find((l) => l.dishId === item.dishId && (l.note || '') === note && optionsKey(l.options) === key);
  if (line) {
    line.quantity = Math.min(MAX_QUANTITY, line.quantity + quantity);
  } else {
    lines.push({ dishId: item.dishId, name: item.name, price: item.price, quantity: Math.min(MAX_QUANTITY, quantity), note, options });
  }
  write(lines);
}

export function setQuantity(index, quantity) {
  const lines = read();
  if (!lines[index]) return;
  if (quantity <= 0) lines.splice(index, 1);
  else lines[index].quantity = Math.min(MAX_QUANTITY, quantity);
  write(lines);
}

export function setNote(index, note) {
  const lines = read();
  if (!lines[index]) return;
  lines[index].note = note.slice(0, 200);
  write(lines);
}

export function replaceCart(lines) {
  write(lines);
}

export function clearCart() {
  write([]);
}

/** Calls `listener(lines)` on every change, here or in another tab. */
export function onCartChange(listener) {
  listeners.add(listener);
}

window.addEventListener('storage', (event) => {
  if (event.key !== KEY) return;
  const lines = read();
  for (const listener of listeners) listener(lines);
});
