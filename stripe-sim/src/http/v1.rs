//! `/v1/*` routes: each handler locks the store, runs one operation from `resources/`, and
//! applies `expand[]` to the result.

use axum::extract::{Extension, Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::resources::confirmation::{self, ConfirmArgs};
use crate::resources::{
    charges, coupons, customers, dispute_lifecycle, disputes, events, invoice_items,
    invoice_lifecycle, invoice_payments, invoices, payment_intent_lifecycle, payment_intents,
    payment_methods, refunds,
};
use crate::store::{RequestCtx, Store};

type Reply = Result<Json<Value>, ApiError>;
type Ctx = Extension<RequestCtx>;
type St = State<AppState>;
type Id = Path<String>;

fn run(
    state: &AppState,
    ctx: RequestCtx,
    params: &Params,
    op: impl FnOnce(&mut Store) -> ApiResult,
) -> Reply {
    state
        .run_json(ctx, |store| {
            let value = op(store)?;
            Ok(store.expand(value, params))
        })
        .map(Json)
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", post(create_customer).get(list_customers))
        .route(
            "/v1/customers/{id}",
            get(get_customer).post(update_customer),
        )
        .route(
            "/v1/customers/{id}/payment_methods",
            get(list_customer_payment_methods),
        )
        .route(
            "/v1/payment_methods",
            post(create_payment_method).get(list_payment_methods),
        )
        .route("/v1/payment_methods/{id}", get(get_payment_method))
        .route(
            "/v1/payment_methods/{id}/attach",
            post(attach_payment_method),
        )
        .route(
            "/v1/payment_methods/{id}/detach",
            post(detach_payment_method),
        )
        .route(
            "/v1/payment_intents",
            post(create_payment_intent).get(list_payment_intents),
        )
        .route("/v1/payment_intents/search", get(search_payment_intents))
        .route(
            "/v1/payment_intents/{id}",
            get(get_payment_intent).post(update_payment_intent),
        )
        .route(
            "/v1/payment_intents/{id}/confirm",
            post(confirm_payment_intent),
        )
        .route(
            "/v1/payment_intents/{id}/capture",
            post(capture_payment_intent),
        )
        .route(
            "/v1/payment_intents/{id}/cancel",
            post(cancel_payment_intent),
        )
        .route("/v1/charges", get(list_charges))
        .route("/v1/charges/{id}", get(get_charge))
        .route("/v1/refunds", post(create_refund).get(list_refunds))
        .route("/v1/refunds/{id}", get(get_refund))
        .route("/v1/disputes", get(list_disputes))
        .route("/v1/disputes/{id}", get(get_dispute).post(update_dispute))
        .route("/v1/disputes/{id}/close", post(close_dispute))
        .route("/v1/coupons", post(create_coupon).get(list_coupons))
        .route("/v1/coupons/{id}", get(get_coupon))
        .route(
            "/v1/promotion_codes",
            post(create_promotion_code).get(list_promotion_codes),
        )
        .route(
            "/v1/promotion_codes/{id}",
            get(get_promotion_code).post(update_promotion_code),
        )
        .route("/v1/invoiceitems", post(create_invoice_item))
        .route("/v1/invoiceitems/{id}", get(get_invoice_item))
        .route("/v1/invoices", post(create_invoice).get(list_invoices))
        .route("/v1/invoices/search", get(search_invoices))
        .route(
            "/v1/invoices/{id}",
            get(get_invoice).post(update_invoice).delete(delete_invoice),
        )
        .route("/v1/invoices/{id}/finalize", post(finalize_invoice))
        .route("/v1/invoices/{id}/pay", post(pay_invoice))
        .route("/v1/invoices/{id}/void", post(void_invoice))
        .route("/v1/invoice_payments", get(list_invoice_payments))
        .route("/v1/invoice_payments/{id}", get(get_invoice_payment))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
}

async fn create_customer(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| customers::create(st, &p))
}

async fn list_customers(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| customers::list(st, &p))
}

async fn get_customer(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| {
        Ok(customers::get(st, &id, "id")?.to_json())
    })
}

async fn update_customer(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| customers::update(st, &id, &p))
}

async fn list_customer_payment_methods(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    let url = format!("/v1/customers/{id}/payment_methods");
    run(&s, ctx, &p, |st| {
        payment_methods::list(st, Some(&id), &p, &url)
    })
}

async fn create_payment_method(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| payment_methods::create(st, &p))
}

async fn list_payment_methods(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| {
        payment_methods::list(st, p.str("customer"), &p, "/v1/payment_methods")
    })
}

async fn get_payment_method(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| {
        Ok(payment_methods::get(st, &id, "payment_method")?.to_json())
    })
}

async fn attach_payment_method(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| {
        payment_methods::attach(st, &id, p.required_str("customer")?)
    })
}

async fn detach_payment_method(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| payment_methods::detach(st, &id))
}

async fn create_payment_intent(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| payment_intents::create(st, &p))
}

async fn list_payment_intents(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| payment_intents::list(st, &p))
}

async fn search_payment_intents(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| payment_intents::search(st, &p))
}

async fn search_invoices(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoices::search(st, &p))
}

async fn get_payment_intent(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| payment_intents::json(st, &id))
}

async fn update_payment_intent(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| payment_intents::update(st, &id, &p))
}

async fn confirm_payment_intent(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| {
        confirmation::confirm(st, &id, ConfirmArgs::from_params(&p)?)
    })
}

async fn capture_payment_intent(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| {
        payment_intent_lifecycle::capture(st, &id, &p)
    })
}

async fn cancel_payment_intent(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| {
        payment_intent_lifecycle::cancel(st, &id, &p)
    })
}

async fn list_charges(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| charges::list(st, &p))
}

async fn get_charge(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| charges::retrieve(st, &id))
}

async fn create_refund(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| refunds::create(st, &p))
}

async fn list_refunds(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| refunds::list(st, &p))
}

async fn get_refund(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| refunds::retrieve(st, &id))
}

async fn list_disputes(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| disputes::list(st, &p))
}

async fn get_dispute(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| disputes::retrieve(st, &id))
}

async fn update_dispute(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| dispute_lifecycle::update(st, &id, &p))
}

async fn close_dispute(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| dispute_lifecycle::close(st, &id))
}

async fn create_coupon(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| coupons::create_coupon(st, &p))
}

async fn list_coupons(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| coupons::list_coupons(st, &p))
}

async fn get_coupon(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| {
        Ok(coupons::get_coupon(st, &id, "coupon")?.to_json())
    })
}

async fn create_promotion_code(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| coupons::create_promotion_code(st, &p))
}

async fn list_promotion_codes(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| coupons::list_promotion_codes(st, &p))
}

async fn get_promotion_code(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| {
        Ok(coupons::get_promotion_code(st, &id, "id")?.to_json(st))
    })
}

async fn update_promotion_code(
    State(s): St,
    Extension(ctx): Ctx,
    Path(id): Id,
    p: Params,
) -> Reply {
    run(&s, ctx, &p, |st| {
        coupons::update_promotion_code(st, &id, &p)
    })
}

async fn create_invoice_item(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_items::create(st, &p))
}

async fn get_invoice_item(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_items::retrieve(st, &id))
}

async fn create_invoice(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoices::create(st, &p))
}

async fn list_invoices(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoices::list(st, &p))
}

async fn get_invoice(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoices::json(st, &id))
}

async fn update_invoice(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoices::update(st, &id, &p))
}

async fn delete_invoice(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoices::delete(st, &id))
}

async fn finalize_invoice(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_lifecycle::finalize(st, &id, &p))
}

async fn pay_invoice(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_lifecycle::pay(st, &id, &p))
}

async fn void_invoice(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_lifecycle::void(st, &id))
}

async fn list_invoice_payments(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_payments::list(st, &p))
}

async fn get_invoice_payment(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| invoice_payments::retrieve(st, &id))
}

async fn list_events(State(s): St, Extension(ctx): Ctx, p: Params) -> Reply {
    run(&s, ctx, &p, |st| events::list(st, &p))
}

async fn get_event(State(s): St, Extension(ctx): Ctx, Path(id): Id, p: Params) -> Reply {
    run(&s, ctx, &p, |st| events::retrieve(st, &id))
}
