// The cart page: the lines kept by the browser (drawn from the page's <template>), brought up
// to date with today's menu, and the checkout. Each checkout attempt has one Idempotency-Key,
// kept until the order is placed or refused, so a retry after a network failure never places
// the order twice.
//
// Allergies: the customer's declared allergens (saved to their profile from this page) are
// compared with the dishes of the cart; a dish containing one shows a warning that must be
// confirmed (`allergensConfirmed`), as the orders service demands. Ready time: the kitchen's
// quote for the cart; when its slot is full, the order can only be scheduled for the next
// free slot, which the customer chooses knowingly.

import { cartLines, cartTotal, setQuantity, setNote, replaceCart, clearCart, onCartChange } from './cart.js';
import { T, t, api, money, problemMessage, toast, LOCALE } from './common.js';

const KEY_STORAGE = 'brigade.checkout.key';
const list = document.querySelector('[data-cart-lines]');
const template = document.getElementById('cart-line-template');
const empty = document.querySelector('[data-cart-empty]');
const totalRow = document.querySelector('[data-cart-total-row]');
const form = document.getElementById('checkout-form');
const errorBox = document.querySelector('[data-checkout-error]');

// Today's menu: drop dishes (or picked options) no longer on it, show today's price: the
// dish's plus its options' deltas.
const menu = JSON.parse(document.getElementById('menu-data')?.textContent || 'null');
if (Array.isArray(menu)) {
  const byId = new Map(menu.map((d) => [d.id, d]));
  const kept = [];
  for (const line of cartLines()) {
    const dish = byId.get(line.dishId);
    const options = (line.options || []).map((o) => {
      const group = (dish?.options || []).find((g) => g.id === o.groupId);
      const choice = group?.choices.find((c) => c.id === o.choiceId);
      return choice && { ...o, group: group.name, choice: choice.name, priceDelta: choice.priceDelta };
    });
    if (!dish || !dish.available || options.some((o) => !o)) {
      toast(t('dish_gone', { name: line.name }), 'error');
      continue;
    }
    const amount = dish.price.amount + options.reduce((s, o) => s + (o.priceDelta?.amount || 0), 0);
    kept.push({ ...line, name: dish.name, options, price: { amount, currency: dish.price.currency } });
  }
  replaceCart(kept);
}

const dishesById = new Map(Array.isArray(menu) ? menu.map((d) => [d.id, d]) : []);
const warning = document.querySelector('[data-allergen-warning]');
const warningLines = document.querySelector('[data-allergen-lines]');
const confirmBox = document.querySelector('[data-allergens-confirmed]');
const readyTime = document.querySelector('[data-ready-time]');
const schedule = document.querySelector('[data-schedule]');
const scheduleBox = document.querySelector('[data-schedule-box]');
const timeFormat = new Intl.DateTimeFormat(LOCALE, { timeStyle: 'short' });
let scheduleAt = null;

function declaredAllergens() {
  return [...document.querySelectorAll('input[name="allergen"]:checked')].map((box) => box.value);
}

/** Shows the dishes that contain declared allergens: `[{dishName, allergens}]`. */
function showConflicts(conflicts) {
  warningLines.replaceChildren(...conflicts.map((c) => {
    const li = document.createElement('li');
    const names = c.allergens.map((a) => T[`allergen_${a}`] || a).join(', ');
    li.textContent = t('allergen_warning_line', { dish: c.dishName, allergens: names });
    return li;
  }));
  if (warning) warning.hidden = conflicts.length === 0;
  if (conflicts.length === 0 && confirmBox) confirmBox.checked = false;
}

function conflicts() {
  const declared = declaredAllergens();
  const seen = new Set();
  return cartLines()
    .map((line) => dishesById.get(line.dishId))
    .filter((dish) => dish && !seen.has(dish.id) && seen.add(dish.id))
    .map((dish) => ({ dishName: dish.name, allergens: (dish.allergens || []).filter((a) => declared.includes(a)) }))
    .filter((c) => c.allergens.length > 0);
}

/** The kitchen's quoted ready time for the cart; a full slot offers the next free one. */
async function quote() {
  if (!readyTime) return;
  const ids = [...new Set(cartLines().map((l) => l.dishId))];
  if (ids.length === 0) { readyTime.hidden = true; schedule.hidden = true; return; }
  const result = await api('GET', `/api/orders/menu/ready-time?dishIds=${ids.join(',')}`);
  if (!result.ok) { readyTime.hidden = true; return; }
  offerSlot(result.data.full ? (result.data.readyAt || null) : null, result.data.full, result.data.readyAt);
}

function offerSlot(nextAt, full, readyAt) {
  readyTime.hidden = false;
  if (!full) {
    readyTime.textContent = t('ready_around', { time: timeFormat.format(new Date(readyAt)) });
    schedule.hidden = true;
    scheduleBox.checked = false;
    scheduleAt = null;
    return;
  }
  readyTime.textContent = nextAt
    ? t('kitchen_full', { time: timeFormat.format(new Date(nextAt)) })
    : T.kitchen_full_no_slot;
  scheduleAt = nextAt;
  schedule.hidden = !nextAt;
  if (nextAt) schedule.querySelector('[data-schedule-label]').textContent = t('schedule_for', { time: timeFormat.format(new Date(nextAt)) });
}

document.addEventListener('change', (event) => {
  if (event.target.matches('input[name="allergen"]')) showConflicts(conflicts());
});

document.querySelector('[data-save-dietary]')?.addEventListener('click', async () => {
  const diets = [...document.querySelectorAll('input[name="diet"]:checked')].map((box) => box.value);
  const result = await api('PATCH', '/api/identity/me', { allergens: declaredAllergens(), diets });
  toast(result.ok ? T.dietary_saved : problemMessage(result), result.ok ? 'success' : 'error');
  showConflicts(conflicts());
});

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
    const options = item.querySelector('.line-options');
    options.textContent = (line.options || []).map((o) => `${o.group}: ${o.choice}`).join(' · ');
    options.hidden = !line.options?.length;
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
  if (warning) showConflicts(conflicts());
  quote();
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
  if (warning && conflicts().length > 0 && !confirmBox.checked) {
    showConflicts(conflicts());
    showError(T.allergen_confirm_needed);
    confirmBox.focus();
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
    items: lines.map((l) => ({ dishId: l.dishId, quantity: l.quantity, ...(l.note ? { note: l.note } : {}),
      ...(l.options?.length ? { options: l.options.map((o) => ({ groupId: o.groupId, choiceId: o.choiceId })) } : {}) })),
    deliveryAddress: { street: address.street, city: address.city, postalCode: address.postalCode,
      ...(address.lat != null ? { lat: address.lat, lon: address.lon } : {}) },
    ...(phone ? { contactPhone: phone } : {}),
    ...(confirmBox?.checked ? { allergensConfirmed: true } : {}),
    ...(scheduleBox?.checked && scheduleAt ? { scheduledFor: scheduleAt } : {}),
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
  if (result.code === 'allergen-confirmation-required') {
    // Declared elsewhere (or a moment ago): the service names the dishes and allergens.
    showConflicts(result.data?.items || []);
    showError(T.allergen_confirm_needed);
    confirmBox?.focus();
    return;
  }
  if (result.code === 'kitchen-slot-full' || result.code === 'order-schedule-too-soon') {
    const next = result.data?.nextAvailableAt || null;
    offerSlot(next, true, next);
    showError(next ? t('kitchen_full', { time: timeFormat.format(new Date(next)) }) : T.kitchen_full_no_slot);
    return;
  }
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
