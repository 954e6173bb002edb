//! French by default, English by choice: every string the pages and their scripts show, in
//! both languages side by side (the macro refuses a string missing in one of them), and prices
//! and dates formatted per locale (`12,50 €` and `€12.50`).
//!
//! Scripts get the same strings as JSON in the page, so a label is translated once for both.
//! Dates are rendered in UTC as `<time datetime>` and rewritten by the script in the browser's
//! own time zone.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// `fr` or `en`: the `?lang=` value, the cookie and `<html lang>`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
        }
    }

    /// The BCP 47 locale scripts format numbers and dates with.
    #[must_use]
    pub fn locale(self) -> &'static str {
        match self {
            Self::Fr => "fr-FR",
            Self::En => "en-GB",
        }
    }

    /// The other language, for the switch in the header.
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Fr => Self::En,
            Self::En => Self::Fr,
        }
    }

    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "fr" => Some(Self::Fr),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    #[must_use]
    pub fn strings(self) -> &'static Strings {
        match self {
            Self::Fr => &FR,
            Self::En => &EN,
        }
    }

    /// A price: `1 234,50 €` in French (no-break spaces), `€1,234.50` in English, as the
    /// browsers' `Intl.NumberFormat` writes them, so prices look the same before and after a
    /// script updates them.
    #[must_use]
    pub fn money(self, minor_units: i64, currency: &str) -> String {
        let sign = if minor_units < 0 { "-" } else { "" };
        let units = minor_units.unsigned_abs();
        let (whole, cents) = (units / 100, units % 100);
        let symbol = match currency {
            "EUR" => "€",
            "USD" => "$",
            "GBP" => "£",
            other => other,
        };
        match self {
            Self::Fr => format!(
                "{sign}{},{cents:02}\u{a0}{symbol}",
                group(whole, '\u{202f}')
            ),
            Self::En => format!("{sign}{symbol}{}.{cents:02}", group(whole, ',')),
        }
    }

    /// A date and time, in UTC until the page's script puts it in the browser's time zone:
    /// `14 mars 2025 à 18:05 UTC`, `14 March 2025, 18:05 UTC`.
    #[must_use]
    pub fn date_time(self, at: DateTime<Utc>) -> String {
        let month = self
            .strings()
            .months
            .split(',')
            .nth(at.month0() as usize)
            .unwrap_or("");
        match self {
            Self::Fr => format!(
                "{} {month} {} à {:02}:{:02} UTC",
                at.day(),
                at.year(),
                at.hour(),
                at.minute()
            ),
            Self::En => format!(
                "{} {month} {}, {:02}:{:02} UTC",
                at.day(),
                at.year(),
                at.hour(),
                at.minute()
            ),
        }
    }

    /// A time of day (`18:05 UTC`), localized by the page's script.
    #[must_use]
    pub fn time(self, at: DateTime<Utc>) -> String {
        format!("{:02}:{:02} UTC", at.hour(), at.minute())
    }
}

fn group(mut n: u64, separator: char) -> String {
    let mut groups = Vec::new();
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let mut out = groups.pop().map(|g| g.to_string()).unwrap_or_default();
    while let Some(g) = groups.pop() {
        out.push(separator);
        out.push_str(&format!("{g:03}"));
    }
    out
}

/// Fills `{name}`-style placeholders.
#[must_use]
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (key, value)| {
            text.replace(&format!("{{{key}}}"), value)
        })
}

macro_rules! strings {
    ($($key:ident: $fr:expr, $en:expr;)*) => {
        /// Every string of the web app, in one language.
        #[derive(Debug, Serialize)]
        pub struct Strings {
            $(pub $key: &'static str,)*
        }

        /// French, the default.
        pub static FR: Strings = Strings { $($key: $fr,)* };
        /// English.
        pub static EN: Strings = Strings { $($key: $en,)* };
    };
}

strings! {
    // Layout
    tagline: "Bistrot parisien, livré chez vous", "Parisian bistro, delivered to your door";
    skip_to_content: "Aller au contenu", "Skip to content";
    main_navigation: "Navigation principale", "Main navigation";
    nav_menu: "La carte", "Menu";
    nav_cart: "Panier", "Cart";
    nav_orders: "Mes commandes", "My orders";
    nav_kitchen: "Cuisine", "Kitchen";
    nav_courier: "Livraisons", "Deliveries";
    nav_board: "Tableau de bord", "Live board";
    nav_menu_editor: "Carte", "Menu";
    nav_team: "Équipe", "Team";
    sign_in: "Se connecter", "Sign in";
    sign_up: "Créer un compte", "Create an account";
    sign_out: "Se déconnecter", "Sign out";
    switch_language: "English", "Français";
    switch_language_code: "en", "fr";
    footer: "Brigade · commandes, cuisine et livraison", "Brigade · ordering, kitchen and delivery";
    role_customer: "Client", "Customer";
    role_chef: "Chef", "Chef";
    role_courier: "Livreur", "Courier";
    role_manager: "Gérant", "Manager";
    months: "janvier,février,mars,avril,mai,juin,juillet,août,septembre,octobre,novembre,décembre",
            "January,February,March,April,May,June,July,August,September,October,November,December";

    // Errors and degraded service
    unavailable_identity: "Les comptes (connexion, profil) sont momentanément indisponibles.", "Accounts (sign-in, profile) are temporarily unavailable.";
    unavailable_orders: "La carte et les commandes sont momentanément indisponibles.", "The menu and orders are temporarily unavailable.";
    unavailable_kitchen: "La cuisine est momentanément injoignable.", "The kitchen is temporarily unreachable.";
    unavailable_delivery: "Le suivi des livraisons est momentanément indisponible.", "Delivery tracking is temporarily unavailable.";
    unavailable_retry: "Nous réessayons automatiquement ; le reste de la page fonctionne.", "We keep trying; the rest of the page works.";
    not_found_title: "Page introuvable", "Page not found";
    not_found_text: "Cette page n'existe pas ou n'est plus disponible.", "This page does not exist or is no longer available.";
    forbidden_title: "Accès réservé", "Restricted";
    forbidden_text: "Cette page est réservée à un autre rôle que le vôtre.", "This page is for another role than yours.";
    back_home: "Retour à l'accueil", "Back to the start";
    error_generic: "L'action a échoué. Réessayez dans un instant.", "That did not work. Please try again in a moment.";
    error_csrf: "Cette page a expiré. Rechargez-la puis réessayez.", "This page has expired. Reload it and try again.";
    error_session: "Votre session a expiré. Reconnectez-vous.", "Your session has expired. Please sign in again.";
    error_service: "Service momentanément indisponible. Réessayez dans un instant.", "Service temporarily unavailable. Please try again in a moment.";
    live_connected: "En direct", "Live";
    live_reconnecting: "Reconnexion…", "Reconnecting…";
    close: "Fermer", "Close";
    dismiss: "Annuler", "Cancel";
    confirm: "Confirmer", "Confirm";
    save: "Enregistrer", "Save";
    saved: "Enregistré.", "Saved.";
    optional: "facultatif", "optional";

    // Sign in, sign up
    sign_in_title: "Connexion", "Sign in";
    sign_in_intro: "Clients, cuisine, livreurs et gérants : un seul accès.", "Customers, kitchen, couriers and managers: one door.";
    sign_up_title: "Créer un compte", "Create an account";
    sign_up_intro: "Pour commander et suivre vos livraisons en direct.", "To order and follow your deliveries live.";
    email: "E-mail", "Email";
    password: "Mot de passe", "Password";
    password_hint: "8 caractères au moins.", "At least 8 characters.";
    name: "Nom", "Name";
    phone: "Téléphone", "Phone";
    no_account: "Pas encore de compte ?", "No account yet?";
    have_account: "Déjà un compte ?", "Already have an account?";
    bad_credentials: "E-mail ou mot de passe incorrect.", "Wrong email or password.";
    too_many_attempts: "Trop de tentatives. Réessayez dans quelques minutes.", "Too many attempts. Please try again in a few minutes.";
    email_taken: "Un compte existe déjà avec cet e-mail.", "An account already exists with this email.";
    check_fields: "Vérifiez les informations saisies : {detail}", "Please check what you entered: {detail}";
    account_created: "Compte créé. Bienvenue !", "Account created. Welcome!";
    signed_out: "Vous êtes déconnecté.", "You are signed out.";

    // Menu
    menu_title: "La carte", "Our menu";
    menu_intro: "Cuisine de bistrot préparée minute, livrée chaude.", "Bistro cooking made to order, delivered hot.";
    search: "Rechercher un plat", "Search for a dish";
    categories: "Catégories", "Categories";
    exclude_allergens: "Exclure des allergènes", "Exclude allergens";
    allergens: "Allergènes", "Allergens";
    no_allergens: "Aucun allergène déclaré", "No declared allergen";
    add_to_cart: "Ajouter", "Add";
    add_named: "Ajouter {name} au panier", "Add {name} to the cart";
    added_to_cart: "{name} ajouté au panier.", "{name} added to your cart.";
    in_cart: "{n} dans le panier", "{n} in cart";
    sold_out: "Épuisé", "Sold out";
    no_results: "Aucun plat ne correspond à vos filtres.", "No dish matches your filters.";
    clear_filters: "Effacer les filtres", "Clear filters";
    view_cart: "Voir le panier", "View cart";
    items_one: "{n} article", "{n} item";
    items_many: "{n} articles", "{n} items";
    prep_time: "≈ {n} min", "≈ {n} min";
    option_required: "obligatoire, {n} au choix", "required, choose {n}";
    option_required_range: "obligatoire, {min} à {max} au choix", "required, choose {min} to {max}";
    option_up_to: "facultatif, jusqu'à {n}", "optional, up to {n}";
    option_missing: "{name} : choisissez « {group} ».", "{name}: please choose \"{group}\".";

    // Cart and checkout
    cart_title: "Votre panier", "Your cart";
    cart_empty: "Votre panier est vide.", "Your cart is empty.";
    browse_menu: "Voir la carte", "See the menu";
    quantity: "Quantité", "Quantity";
    decrease: "Un de moins : {name}", "One less: {name}";
    increase: "Un de plus : {name}", "One more: {name}";
    remove: "Retirer", "Remove";
    note_for_kitchen: "Note pour la cuisine", "Note for the kitchen";
    note_placeholder: "ex. sans oignons", "e.g. no onions";
    total: "Total", "Total";
    checkout_title: "Livraison", "Delivery";
    saved_addresses: "Mes adresses", "My addresses";
    new_address: "Nouvelle adresse", "New address";
    street: "Adresse", "Street address";
    postal_code: "Code postal", "Postcode";
    city: "Ville", "City";
    save_address: "Enregistrer cette adresse dans mon profil", "Save this address to my profile";
    contact_phone: "Téléphone pour le livreur", "Phone for the courier";
    place_order: "Commander", "Place order";
    placing_order: "Envoi de la commande…", "Placing your order…";
    sign_in_to_order: "Connectez-vous pour commander.", "Sign in to place your order.";
    staff_cannot_order: "Les comptes du personnel ne passent pas de commande.", "Staff accounts do not place orders.";
    dish_gone: "{name} n'est plus disponible : retiré du panier.", "{name} is no longer available: removed from your cart.";
    order_failed: "La commande n'a pas pu être passée : {reason}", "Your order could not be placed: {reason}";
    address_required: "Indiquez une adresse de livraison complète.", "Please enter a complete delivery address.";

    // Order page
    order_title: "Commande {id}", "Order {id}";
    placed_on: "Passée le {date}", "Placed on {date}";
    progress: "Suivi", "Progress";
    status_placed: "Commande reçue", "Order received";
    status_accepted: "Acceptée", "Accepted";
    status_in_preparation: "En préparation", "Being prepared";
    status_ready: "Prête", "Ready";
    status_out_for_delivery: "En livraison", "Out for delivery";
    status_delivered: "Livrée", "Delivered";
    status_cancelled: "Annulée", "Cancelled";
    status_rejected: "Refusée", "Rejected";
    explain_placed: "Le restaurant la confirme dans un instant.", "The restaurant will confirm it in a moment.";
    explain_accepted: "La cuisine l'a prise en charge.", "The kitchen has taken it on.";
    explain_in_preparation: "Nos cuisiniers s'en occupent.", "Our cooks are on it.";
    explain_ready: "Elle attend son livreur.", "It is waiting for its courier.";
    explain_out_for_delivery: "Votre livreur est en route.", "Your courier is on the way.";
    explain_delivered: "Bon appétit !", "Enjoy your meal!";
    explain_cancelled: "Cette commande a été annulée.", "This order was cancelled.";
    explain_rejected: "Le restaurant n'a pas pu préparer cette commande.", "The restaurant could not prepare this order.";
    reason: "Motif : {reason}", "Reason: {reason}";
    your_courier: "Votre livreur", "Your courier";
    eta: "Arrivée estimée vers {time}", "Expected around {time}";
    see_on_map: "Voir sa position sur la carte", "See their position on the map";
    position_updated: "Position mise à jour à {time}", "Position updated at {time}";
    waiting_for_courier: "En attente d'un livreur", "Waiting for a courier";
    your_order: "Votre commande", "Your order";
    delivery_address: "Adresse de livraison", "Delivery address";
    cancel_order: "Annuler la commande", "Cancel the order";
    cancel_confirm: "Annuler cette commande ? C'est définitif.", "Cancel this order? This cannot be undone.";
    keep_order: "Garder la commande", "Keep the order";
    cancel_too_late: "Trop tard pour annuler : la cuisine a commencé.", "Too late to cancel: the kitchen has started.";
    order_cancelled: "Commande annulée.", "Order cancelled.";
    reorder: "Commander à nouveau", "Order again";
    reordered: "Les plats ont été ajoutés au panier.", "The dishes were added to your cart.";
    tracking_unavailable: "Le suivi du livreur est momentanément indisponible. Votre commande suit son cours.", "Courier tracking is temporarily unavailable. Your order is still on its way.";
    order_unavailable: "Cette commande ne peut pas être affichée pour le moment.", "This order cannot be shown right now.";

    // Order history
    history_title: "Mes commandes", "My orders";
    history_empty: "Vous n'avez pas encore commandé.", "You have not ordered yet.";
    view_order: "Suivre", "Follow";
    newer: "Plus récentes", "Newer";
    older: "Plus anciennes", "Older";
    dishes_one: "{n} plat", "{n} dish";
    dishes_many: "{n} plats", "{n} dishes";

    // Kitchen
    kitchen_title: "Cuisine", "Kitchen";
    stations: "Postes", "Stations";
    all_stations: "Tous", "All";
    station_stove: "Fourneaux", "Stove";
    station_grill: "Grill", "Grill";
    station_cold: "Garde-manger", "Cold";
    station_pastry: "Pâtisserie", "Pastry";
    station_bar: "Bar", "Bar";
    station_main: "Cuisine", "Kitchen";
    tickets_one: "{n} bon", "{n} ticket";
    tickets_many: "{n} bons", "{n} tickets";
    no_tickets: "Aucun bon en attente. Les nouvelles commandes s'affichent ici d'elles-mêmes.", "No tickets waiting. New orders appear here by themselves.";
    start: "Commencer", "Start";
    mark_ready: "Prêt", "Ready";
    item_pending: "En attente", "Waiting";
    item_in_preparation: "En préparation", "Cooking";
    item_ready: "Prêt ✓", "Ready ✓";
    bump: "Tout est prêt", "All ready";
    reject: "Refuser", "Reject";
    reject_reason: "Motif du refus (vu par le client)", "Reason (shown to the customer)";
    reject_placeholder: "ex. plus de saumon", "e.g. out of salmon";
    sound_on: "Son activé", "Sound on";
    sound_off: "Activer le son", "Turn sound on";
    new_ticket: "Nouveau bon {id}", "New ticket {id}";
    elapsed: "Temps écoulé", "Time elapsed";
    target: "objectif {n} min", "target {n} min";
    ticket_ready: "Bon {id} prêt : envoyé au passe.", "Ticket {id} ready: sent to the pass.";
    undo: "Annuler", "Undo";
    undo_step: "Annuler la dernière action : {name}", "Undo the last step: {name}";
    step_undone: "Étape annulée : {name}", "Step undone: {name}";
    undo_too_late: "Trop tard pour annuler : l'étape date de plus de deux minutes ou le bon est prêt.", "Too late to undo: the step is more than two minutes old or the ticket is ready.";

    // Courier
    courier_title: "Mes livraisons", "My deliveries";
    on_shift: "En service", "On shift";
    off_shift: "Hors service", "Off shift";
    start_shift: "Commencer mon service", "Start my shift";
    end_shift: "Terminer mon service", "End my shift";
    no_assignment: "Aucune livraison pour l'instant. Restez en service : elle s'affichera ici.", "No delivery right now. Stay on shift: it will show up here.";
    off_shift_hint: "Commencez votre service pour recevoir des livraisons.", "Start your shift to receive deliveries.";
    current_delivery: "Livraison en cours", "Current delivery";
    open_directions: "Ouvrir l'itinéraire", "Open directions";
    call_customer: "Appeler le client", "Call the customer";
    pick_up: "J'ai récupéré la commande", "I have picked it up";
    food_not_ready: "En préparation : vous pourrez la récupérer dès qu'elle sera prête", "Being prepared: pick it up as soon as it is ready";
    delivered: "Livrée", "Delivered";
    could_not_deliver: "Échec de livraison", "Could not deliver";
    fail_reason: "Que s'est-il passé ?", "What happened?";
    fail_absent: "Client absent", "Customer absent";
    fail_address: "Adresse introuvable", "Address not found";
    fail_refused: "Commande refusée", "Order refused";
    received_by: "Remise à", "Handed to";
    received_by_placeholder: "ex. le client, la gardienne", "e.g. the customer, the concierge";
    sharing_position: "Position partagée avec le client", "Sharing your position with the customer";
    position_denied: "Position non partagée : autorisez la localisation.", "Position not shared: allow location access.";
    not_a_courier: "Ce compte n'a pas encore de profil livreur. Réessayez dans un instant.", "This account has no courier profile yet. Try again in a moment.";
    new_assignment: "Nouvelle livraison !", "New delivery!";
    delivery_done: "Livraison terminée. Merci !", "Delivery complete. Thank you!";
    delivery_requested: "Demandée", "Requested";
    delivery_ready_for_pickup: "À récupérer", "Ready for pickup";
    delivery_assigned: "Assignée", "Assigned";
    delivery_picked_up: "En route", "On the way";
    delivery_delivered: "Livrée", "Delivered";
    delivery_failed: "Échouée", "Failed";
    delivery_cancelled: "Annulée", "Cancelled";
    vehicle_bike: "Vélo", "Bike";
    vehicle_scooter: "Scooter", "Scooter";
    vehicle_car: "Voiture", "Car";

    // Manager
    console_title: "Console", "Console";
    orders_today: "Commandes du jour", "Orders today";
    avg_prep: "Commande → prête", "Order → ready";
    avg_delivery: "Prête → livrée", "Ready → delivered";
    minutes: "{n} min", "{n} min";
    deliveries_in_progress: "Livraisons en cours", "Deliveries in progress";
    assign: "Assigner", "Assign";
    choose_courier: "Livreur", "Courier";
    no_courier_on_shift: "Aucun livreur disponible en service.", "No free courier on shift.";
    assigned: "Livraison assignée.", "Delivery assigned.";
    couriers: "Livreurs", "Couriers";
    active: "Actif", "Active";
    inactive: "Inactif", "Inactive";
    activate: "Activer", "Activate";
    deactivate: "Désactiver", "Deactivate";
    remove_courier_confirm: "Retirer ce livreur de la flotte ?", "Remove this courier from the fleet?";
    nothing_in_progress: "Rien en cours.", "Nothing in progress.";
    order_column: "Commande", "Order";
    status: "Statut", "Status";
    courier: "Livreur", "Courier";
    vehicle: "Véhicule", "Vehicle";
    menu_editor_title: "La carte", "The menu";
    add_dish: "Ajouter un plat", "Add a dish";
    dish_name: "Nom du plat", "Dish name";
    description: "Description", "Description";
    category: "Catégorie", "Category";
    price_eur: "Prix (€)", "Price (€)";
    station: "Poste", "Station";
    prep_minutes: "Préparation (min)", "Preparation (min)";
    available: "Disponible", "Available";
    mark_sold_out: "Marquer épuisé", "Mark sold out";
    put_back: "Remettre à la carte", "Back on the menu";
    edit: "Modifier", "Edit";
    dish_saved: "Plat enregistré.", "Dish saved.";
    dish_added: "Plat ajouté à la carte.", "Dish added to the menu.";
    option_groups: "Options du plat (cuisson, suppléments…)", "Dish options (cooking, extras…)";
    option_group: "Groupe d'options", "Option group";
    option_group_name: "Nom du groupe", "Group name";
    option_group_required: "Obligatoire", "Required";
    min_choices: "Choix minimum", "Fewest choices";
    max_choices: "Choix maximum", "Most choices";
    choice_name: "Choix", "Choice";
    price_delta_eur: "Supplément (€)", "Extra charge (€)";
    add_option_group: "Ajouter un groupe d'options", "Add an option group";
    remove_option_group: "Retirer ce groupe", "Remove this group";
    add_choice: "Ajouter un choix", "Add a choice";
    remove_choice: "Retirer ce choix", "Remove this choice";
    dish_not_saved: "Le plat n'est pas enregistré.", "The dish was not saved.";
    dish_field_error: "{field} : {detail}", "{field}: {detail}";
    team_title: "Équipe", "Team";
    create_staff: "Créer un compte du personnel", "Create a staff account";
    role: "Rôle", "Role";
    staff_created: "Compte créé.", "Account created.";
    courier_profile_note: "Un compte livreur rejoint la liste des livreurs en quelques secondes.", "A courier account joins the couriers list within seconds.";
    see_kitchen: "Écran cuisine", "Kitchen screen";
    nav_notifications: "Notifications", "Notifications";
    webhooks_title: "Webhooks", "Webhooks";
    webhooks_intro: "Chaque notification (commande acceptée, livreur en route, livraison échouée…) est envoyée, signée, à ces adresses.", "Every notification (order accepted, courier on the way, delivery failed…) is posted, signed, to these addresses.";
    webhook_url: "Adresse (http:// ou https://)", "URL (http:// or https://)";
    webhook_secret: "Secret de signature", "Signing secret";
    webhook_secret_hint: "Laissez vide pour en générer un.", "Leave empty to have one generated.";
    add_webhook: "Ajouter le webhook", "Add the webhook";
    webhook_secret_once: "Webhook ajouté. Notez son secret de signature, il ne sera plus affiché : {secret}", "Webhook added. Note its signing secret, it will not be shown again: {secret}";
    webhook_delivered: "{n} envoyées", "{n} delivered";
    webhook_pending: "{n} en attente", "{n} pending";
    webhook_parked: "{n} en échec", "{n} failed";
    last_error: "Dernière erreur : {error}", "Last error: {error}";
    retry_parked: "Renvoyer les échecs", "Retry the failed ones";
    retried: "Envois relancés.", "Deliveries retried.";
    delete: "Supprimer", "Delete";
    delete_webhook_confirm: "Ne plus envoyer les notifications à ce webhook ?", "Stop posting notifications to this webhook?";
    no_webhooks: "Aucun webhook enregistré.", "No webhook registered.";
    recent_notifications: "Notifications récentes", "Recent notifications";
    no_notifications: "Aucune notification pour l'instant.", "No notifications yet.";
    nav_dead_letters: "Messages en échec", "Dead letters";
    dead_letters_intro: "Les messages qu'un service n'a pas pu appliquer, mis de côté avec leur erreur. Une fois la cause corrigée, rejouez-les ; sinon, écartez-les.", "Messages a service could not apply, set aside with their error. Once the cause is fixed, replay them; otherwise, discard them.";
    no_dead_letters: "Aucun message en échec.", "No dead letters.";
    dead_letter_attempts: "{n} tentative(s)", "{n} attempt(s)";
    parked_on: "Mis de côté le {date}", "Parked on {date}";
    replay: "Rejouer", "Replay";
    discard: "Écarter", "Discard";
    discard_confirm: "Écarter ce message sans l'appliquer ? C'est définitif.", "Discard this message without applying it? This cannot be undone.";
    dead_letter_replayed: "Message rejoué.", "Message replayed.";
    dead_letter_discarded: "Message écarté.", "Message discarded.";
    dead_letter_still_failing: "Le message échoue encore : corrigez la cause avant de le rejouer.", "The message still fails: fix the cause before replaying it.";
    dead_letter_closed: "Ce message a déjà été traité.", "This message was already handled.";
    last_seen: "Vue à {time}", "Seen at {time}";

    // Allergies, diets, ready time (checkout) and sold-out dishes (kitchen)
    dietary_title: "Mes allergies et régimes", "My allergies and diets";
    dietary_intro: "Déclarez vos allergies : nous vous prévenons avant de commander un plat qui en contient, et la cuisine voit l'alerte sur votre bon.", "Declare your allergies: we warn you before you order a dish that contains one, and the kitchen sees the alert on your ticket.";
    my_allergens: "Mes allergènes", "My allergens";
    my_diets: "Mes régimes", "My diets";
    save_dietary: "Enregistrer mon profil", "Save my profile";
    dietary_saved: "Profil alimentaire enregistré.", "Dietary profile saved.";
    diet_vegetarian: "Végétarien", "Vegetarian";
    diet_vegan: "Végétalien", "Vegan";
    diet_pescatarian: "Pescétarien", "Pescatarian";
    diet_gluten_free: "Sans gluten", "Gluten-free";
    diet_dairy_free: "Sans lactose", "Dairy-free";
    diet_halal: "Halal", "Halal";
    diet_kosher: "Casher", "Kosher";
    allergen_warning_title: "Attention : allergènes déclarés", "Warning: declared allergens";
    allergen_warning_line: "{dish} contient : {allergens}", "{dish} contains: {allergens}";
    allergen_confirm: "Je sais que ces plats contiennent mes allergènes et je les commande quand même.", "I know these dishes contain my allergens and I order them anyway.";
    allergen_confirm_needed: "Confirmez les allergènes avant de commander.", "Please confirm the allergens before ordering.";
    ready_around: "Prête vers {time}", "Ready around {time}";
    kitchen_full: "La cuisine est complète pour ce créneau. Prochain créneau libre : {time}.", "The kitchen is full for this slot. Next free slot: {time}.";
    kitchen_full_no_slot: "La cuisine est complète aujourd'hui : aucun créneau libre.", "The kitchen is full today: no free slot.";
    schedule_for: "Programmer la commande pour {time}", "Schedule the order for {time}";
    scheduled_for: "Programmée pour {time}", "Scheduled for {time}";
    allergy_banner: "ALLERGIE : {list}", "ALLERGY: {list}";
    sold_out_button: "Épuisé", "Sold out";
    sold_out_confirm: "Marquer « {name} » comme épuisé ? Le plat disparaît de la carte.", "Mark \"{name}\" as sold out? The dish leaves the menu.";
    sold_out_done: "{name} est épuisé : retiré de la carte.", "{name} is sold out: off the menu.";
    reject_sold_out: "Plats manquants (épuisés, retirés de la carte)", "Missing dishes (sold out, taken off the menu)";

    // Allergens (EU 1169/2011)
    allergen_gluten: "Gluten", "Gluten";
    allergen_crustaceans: "Crustacés", "Crustaceans";
    allergen_eggs: "Œufs", "Eggs";
    allergen_fish: "Poisson", "Fish";
    allergen_peanuts: "Arachides", "Peanuts";
    allergen_soybeans: "Soja", "Soy";
    allergen_milk: "Lait", "Milk";
    allergen_nuts: "Fruits à coque", "Tree nuts";
    allergen_celery: "Céleri", "Celery";
    allergen_mustard: "Moutarde", "Mustard";
    allergen_sesame: "Sésame", "Sesame";
    allergen_sulphites: "Sulfites", "Sulphites";
    allergen_lupin: "Lupin", "Lupin";
    allergen_molluscs: "Mollusques", "Molluscs";
}

/// The allergens, in the regulation's order.
pub const ALLERGENS: [&str; 14] = [
    "gluten",
    "crustaceans",
    "eggs",
    "fish",
    "peanuts",
    "soybeans",
    "milk",
    "nuts",
    "celery",
    "mustard",
    "sesame",
    "sulphites",
    "lupin",
    "molluscs",
];

/// The diets a customer may declare (identity's spelling).
pub const DIETS: [&str; 7] = [
    "vegetarian",
    "vegan",
    "pescatarian",
    "gluten_free",
    "dairy_free",
    "halal",
    "kosher",
];

/// The kitchen stations the starter menu uses, in the order a pass reads them.
pub const STATIONS: [&str; 6] = ["stove", "grill", "cold", "pastry", "bar", "main"];

impl Strings {
    /// The label of an order status (API.md spelling).
    #[must_use]
    pub fn order_status(&self, status: &str) -> &'static str {
        match status {
            "accepted" => self.status_accepted,
            "in_preparation" => self.status_in_preparation,
            "ready" => self.status_ready,
            "out_for_delivery" => self.status_out_for_delivery,
            "delivered" => self.status_delivered,
            "cancelled" => self.status_cancelled,
            "rejected" => self.status_rejected,
            _ => self.status_placed,
        }
    }

    /// One sentence about an order status, for the customer.
    #[must_use]
    pub fn order_explanation(&self, status: &str) -> &'static str {
        match status {
            "accepted" => self.explain_accepted,
            "in_preparation" => self.explain_in_preparation,
            "ready" => self.explain_ready,
            "out_for_delivery" => self.explain_out_for_delivery,
            "delivered" => self.explain_delivered,
            "cancelled" => self.explain_cancelled,
            "rejected" => self.explain_rejected,
            _ => self.explain_placed,
        }
    }

    /// The label of a delivery status.
    #[must_use]
    pub fn delivery_status(&self, status: &str) -> &'static str {
        match status {
            "ready_for_pickup" => self.delivery_ready_for_pickup,
            "assigned" => self.delivery_assigned,
            "picked_up" => self.delivery_picked_up,
            "delivered" => self.delivery_delivered,
            "failed" => self.delivery_failed,
            "cancelled" => self.delivery_cancelled,
            _ => self.delivery_requested,
        }
    }

    /// The label of a kitchen item status.
    #[must_use]
    pub fn item_status(&self, status: &str) -> &'static str {
        match status {
            "in_preparation" => self.item_in_preparation,
            "ready" => self.item_ready,
            _ => self.item_pending,
        }
    }

    #[must_use]
    pub fn vehicle(&self, vehicle: &str) -> &'static str {
        match vehicle {
            "scooter" => self.vehicle_scooter,
            "car" => self.vehicle_car,
            _ => self.vehicle_bike,
        }
    }

    #[must_use]
    pub fn role(&self, role: brigade_domain::Role) -> &'static str {
        match role {
            brigade_domain::Role::Customer => self.role_customer,
            brigade_domain::Role::Chef => self.role_chef,
            brigade_domain::Role::Courier => self.role_courier,
            brigade_domain::Role::Manager => self.role_manager,
        }
    }

    /// The label of a diet code; an unknown code is shown as it is.
    #[must_use]
    pub fn diet<'a>(&self, code: &'a str) -> &'a str {
        match code {
            "vegetarian" => self.diet_vegetarian,
            "vegan" => self.diet_vegan,
            "pescatarian" => self.diet_pescatarian,
            "gluten_free" => self.diet_gluten_free,
            "dairy_free" => self.diet_dairy_free,
            "halal" => self.diet_halal,
            "kosher" => self.diet_kosher,
            other => other,
        }
    }

    /// The label of an allergen code; an unknown code is shown as it is.
    #[must_use]
    pub fn allergen<'a>(&self, code: &'a str) -> &'a str {
        match code {
            "gluten" => self.allergen_gluten,
            "crustaceans" => self.allergen_crustaceans,
            "eggs" => self.allergen_eggs,
            "fish" => self.allergen_fish,
            "peanuts" => self.allergen_peanuts,
            "soybeans" => self.allergen_soybeans,
            "milk" => self.allergen_milk,
            "nuts" => self.allergen_nuts,
            "celery" => self.allergen_celery,
            "mustard" => self.allergen_mustard,
            "sesame" => self.allergen_sesame,
            "sulphites" => self.allergen_sulphites,
            "lupin" => self.allergen_lupin,
            "molluscs" => self.allergen_molluscs,
            other => other,
        }
    }

    /// The label of a kitchen station; an unknown station is shown as it is.
    #[must_use]
    pub fn station<'a>(&self, code: &'a str) -> &'a str {
        match code {
            "stove" => self.station_stove,
            "grill" => self.station_grill,
            "cold" => self.station_cold,
            "pastry" => self.station_pastry,
            "bar" => self.station_bar,
            "main" => self.station_main,
            other => other,
        }
    }

    /// A menu category: the starter menu's French names are translated, a manager's own
    /// categories are shown as written.
    #[must_use]
    pub fn category<'a>(&self, name: &'a str) -> &'a str {
        if std::ptr::eq(self, &FR) {
            return name;
        }
        match name {
            "Entrées" => "Starters",
            "Plats" => "Mains",
            "Desserts" => "Desserts",
            "Boissons" => "Drinks",
            other => other,
        }
    }

    /// `{n} article` / `{n} articles`.
    #[must_use]
    pub fn count(&self, n: usize, one: &str, many: &str) -> String {
        let template = if n == 1 { one } else { many };
        fill(template, &[("n", &n.to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn prices_are_written_the_french_and_the_english_way() {
        assert_eq!(Lang::Fr.money(1250, "EUR"), "12,50\u{a0}€");
        assert_eq!(Lang::En.money(1250, "EUR"), "€12.50");
        assert_eq!(Lang::Fr.money(123_450, "EUR"), "1\u{202f}234,50\u{a0}€");
        assert_eq!(Lang::En.money(123_450, "EUR"), "€1,234.50");
        assert_eq!(Lang::En.money(5, "EUR"), "€0.05");
    }

    #[test]
    fn dates_are_written_per_locale() {
        let at = Utc
            .with_ymd_and_hms(2025, 3, 14, 18, 5, 0)
            .single()
            .expect("a date");
        assert_eq!(Lang::Fr.date_time(at), "14 mars 2025 à 18:05 UTC");
        assert_eq!(Lang::En.date_time(at), "14 March 2025, 18:05 UTC");
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(fill(EN.order_title, &[("id", "AB12")]), "Order AB12");
        assert_eq!(FR.count(1, FR.items_one, FR.items_many), "1 article");
        assert_eq!(EN.count(3, EN.items_one, EN.items_many), "3 items");
    }

    #[test]
    fn categories_of_the_starter_menu_are_translated() {
        assert_eq!(EN.category("Plats"), "Mains");
        assert_eq!(FR.category("Plats"), "Plats");
        assert_eq!(EN.category("Spécialités"), "Spécialités");
    }
}
