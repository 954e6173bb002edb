// The cart page: the lines kept by the browser (drawn from the page's <template>), brought up
// to date with today's menu, and the checkout. Each checkout attempt has one Idempotency-Key,
// kept until the order is placed or refused, so a retry after a network failure never places
// the order twice.

import { cartLines, cartTotal, setQuantity, setNote, replaceCart, clearCart, onCartChange } from './cart.js';
import { T, t, api, money, problemMessage, toast } from './common.js';

const KEY_STORAGE = 'brigade.checkout.key';
const list = document.querySelector('[data-cart-lines]');
const template = document.getElementById('cart-line-template');
const empty = document.querySelector('[data-cart-empty]');
const totalRow = document.querySelector('[data-cart-total-row]');
const form = document.getElementById('checkout-form');
const errorBox = document.querySelector('[data-checkout-error]');

// Today's menu: drop dishes no longer on it, show today's price.
const menu = JSON.parse(document.getElementById('menu-data')?.textContent || 'null');
if (Array.isArray(menu)) {
  const byId = new Map(menu.map((d) => [d.id, d]));
  const kept = [];
  for (const line of cartLines()) {
    const dish = byId.get(line.dishId);
    if (!dish || !dish.available) {
      toast(t('dish_gone', { name: line.name }), 'error');
      continue;
    }
    kept.push({ ...line, name: dish.name, price: dish.price });
  }
  replaceCart(kept);
}

function render() {
  const lines = cartLines();
  empty.hidden = lines.length > 0;
  totalRow.hidden = lines.length === 0;
  if (form) form.hidden = lines.length === 0;
  const focused = document.activeElement?.closest('[data-index]');
  const focusedIndex = focused?.dataset.index;
  const focusedRole = document.activeElement?.matches('[data-note]') ? 'note' : null;
  list.replaceChildren(...lines.map((line, index) => {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.index = index;
    item.querySelector('.line-name').textContent = line.name;
    item.querySelector('.line-total').textContent = money({ amount: line.price.amount * line.quantity, currency: line.price.currency });
    item.querySelector('[data-qty]').textContent = line.quantity;
    item.querySelector('[data-dec]').setAttribute('aria-label', t('decrease', { name: line.name }));
    item.querySelector('[data-inc]').setAttribute('aria-label', t('increase', { name: line.name }));
    item.querySelector('.stepper').setAttribute('aria-label', `${T.quantity} · ${line.name}`);
    const note = item.querySelector('[data-note]');
    note.value = line.note || '';
    note.id = `note-${index}`;
    return item;
  }));
  for (const total of document.querySelectorAll('[data-cart-total]')) total.textContent = money(cartTotal());
  if (focusedIndex !== undefined && focusedRole === 'note') {
    list.querySelector(`[data-index="${focusedIndex}"] [data-note]`)?.focus();
  }
}

list.addEventListener('click', (event) => {
  const line = event.target.closest('[data-index]');
  if (!line) return;
  const index = Number(line.dataset.index);
  const quantity = cartLines()[index]?.quantity || 0;
  if (event.target.closest('[data-dec]')) setQuantity(index, quantity - 1);
  else if (event.target.closest('[data-inc]')) setQuantity(index, quantity + 1);
  else if (event.target.closest('[data-remove]')) setQuantity(index, 0);
  else return;
  const again = list.querySelector(`[data-index="${index}"] ${event.target.closest('[data-dec]') ? '[data-dec]' : '[data-inc]'}`);
  (again || list.querySelector('[data-remove]') || empty.querySelector('a'))?.focus();
});

list.addEventListener('change', (event) => {
  const note = event.target.closest('[data-note]');
  if (!note) return;
  setNote(Number(note.closest('[data-index]').dataset.index), note.value.trim());
});

// Saved address or a new one.
const newAddress = document.querySelector('[data-new-address]');
for (const radio of document.querySelectorAll('input[name="address"]')) {
  radio.addEventListener('change', () => {
    newAddress.hidden = radio.value !== 'new' || !radio.checked;
  });
}

function chosenAddress() {
  const chosen = document.querySelector('input[name="address"]:checked');
  if (chosen && chosen.value !== 'new') {
    const saved = JSON.parse(chosen.dataset.address);
    return { address: saved, fresh: false };
  }
  const value = (name) => form.elements[name]?.value.trim() || '';
  return {
    address: { street: value('street'), postalCode: value('postalCode'), city: value('city') },
    fresh: true,
  };
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
  if (message) errorBox.focus?.();
}

form?.addEventListener('submit', async (event) => {
  event.preventDefault();
  showError('');
  const lines = cartLines();
  if (lines.length === 0) return;
  const { address, fresh } = chosenAddress();
  if (!address.street || !address.postalCode || !address.city) {
    showError(T.address_required);
    form.elements.street?.focus();
    return;
  }
  const button = form.querySelector('[data-place-order]');
  button.disabled = true;
  const label = button.innerHTML;
  button.textContent = T.placing_order;

  let key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) {
    key = crypto.randomUUID();
    sessionStorage.setItem(KEY_STORAGE, key);
  }
  const phone = form.elements.phone?.value.trim();
  const order = {
    items: lines.map((l) => ({ dishId: l.dishId, quantity: l.quantity, ...(l.note ? { note: l.note } : {}) })),
    deliveryAddress: { street: address.street, city: address.city, postalCode: address.postalCode,
      ...(address.lat != null ? { lat: address.lat, lon: address.lon } : {}) },
    ...(phone ? { contactPhone: phone } : {}),
  };
  const result = await api('POST', '/api/orders/orders', order, { 'Idempotency-Key': key });
  if (result.ok && result.data?.orderId) {
    sessionStorage.removeItem(KEY_STORAGE);
    if (fresh && form.elements.save?.checked) await saveAddress(address);
    clearCart();
    location.href = `/orders/${result.data.orderId}`;
    return;
  }
  // Refused as asked (4xx): the key is free again, the customer may fix the cart. Failed on
  // our side: keep the key, so that trying again cannot place a second order.
  if (result.status >= 400 && result.status < 500) sessionStorage.removeItem(KEY_STORAGE);
  button.disabled = false;
  button.innerHTML = label;
  render();
  showError(problemMessage(result));
});

async function saveAddress(address) {
  const me = await api('GET', '/api/identity/me');
  if (!me.ok) return;
  const addresses = (me.data.addresses || []).map((a) => ({ id: a.id, street: a.street, city: a.city, postalCode: a.postalCode, lat: a.lat, lon: a.lon }));
  addresses.push(address);
  await api('PATCH', '/api/identity/me', { addresses });
}

onCartChange(render);
render();
