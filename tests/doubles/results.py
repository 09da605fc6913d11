"""TransactionResult XDR for the ledger double, from Horizon-style result codes (tx_*, op_*).

Covers the classic operations the double applies except offers: a transaction with an offer operation gets
no `result_xdr` (its success result would need the offer entries crossed, which the double does not keep);
read `result_codes` or `/offers` instead.
"""

from __future__ import annotations

from stellar_sdk import xdr

TX = {
    "tx_success": "txSUCCESS",
    "tx_failed": "txFAILED",
    "tx_bad_seq": "txBAD_SEQ",
    "tx_bad_auth": "txBAD_AUTH",
    "tx_insufficient_balance": "txINSUFFICIENT_BALANCE",
    "tx_no_source_account": "txNO_ACCOUNT",
    "tx_insufficient_fee": "txINSUFFICIENT_FEE",
    "tx_not_supported": "txNOT_SUPPORTED",
    "tx_too_late": "txTOO_LATE",
    "tx_missing_operation": "txMISSING_OPERATION",
    "tx_malformed": "txMALFORMED",
}
# sdk operation class -> (OperationType, OperationResultTr field, result class prefix, result code prefix)
OPS = {
    "CreateAccount": ("CREATE_ACCOUNT", "create_account_result", "CreateAccount", "CREATE_ACCOUNT_"),
    "Payment": ("PAYMENT", "payment_result", "Payment", "PAYMENT_"),
    "SetOptions": ("SET_OPTIONS", "set_options_result", "SetOptions", "SET_OPTIONS_"),
    "ChangeTrust": ("CHANGE_TRUST", "change_trust_result", "ChangeTrust", "CHANGE_TRUST_"),
    "AllowTrust": ("ALLOW_TRUST", "allow_trust_result", "AllowTrust", "ALLOW_TRUST_"),
    "SetTrustLineFlags": (
        "SET_TRUST_LINE_FLAGS",
        "set_trust_line_flags_result",
        "SetTrustLineFlags",
        "SET_TRUST_LINE_FLAGS_",
    ),
    "ManageData": ("MANAGE_DATA", "manage_data_result", "ManageData", "MANAGE_DATA_"),
    "BumpSequence": ("BUMP_SEQUENCE", "bump_seq_result", "BumpSequence", "BUMP_SEQUENCE_"),
    "Clawback": ("CLAWBACK", "clawback_result", "Clawback", "CLAWBACK_"),
}
GENERIC = {"op_bad_auth": "opBAD_AUTH", "op_no_source_account": "opNO_ACCOUNT", "op_not_supported": "opNOT_SUPPORTED"}


def _op_result(op_class: str, code: str) -> xdr.OperationResult | None:
    if code in GENERIC:
        return xdr.OperationResult(getattr(xdr.OperationResultCode, GENERIC[code]))
    spec = OPS.get(op_class)
    if spec is None:
        return None
    op_type, field, cls, prefix = spec
    codes = getattr(xdr, cls + "ResultCode")
    name = prefix + code.removeprefix("op_").upper()
    member = getattr(codes, name, None)
    if member is None:  # Horizon's op_already_exists is CREATE_ACCOUNT_ALREADY_EXIST (members may be 0: no `or`)
        member = getattr(codes, name.rstrip("S"), None)
    if member is None:
        return None
    result = getattr(xdr, cls + "Result")(member)
    tr = xdr.OperationResultTr(getattr(xdr.OperationType, op_type), **{field: result})
    return xdr.OperationResult(xdr.OperationResultCode.opINNER, tr)


def result_xdr(tx_code: str, fee_charged: int, op_classes: list[str], op_codes: list[str]) -> str:
    """base64 TransactionResult, or "" when the double cannot state it exactly."""
    code = getattr(xdr.TransactionResultCode, TX.get(tx_code, ""), None)
    if code is None:
        return ""
    results = None
    if tx_code in ("tx_success", "tx_failed"):
        results = []
        for cls, op_code in zip(op_classes, op_codes, strict=False):
            r = _op_result(cls, op_code)
            if r is None:
                return ""
            results.append(r)
    body = xdr.TransactionResultResult(code, results=results)
    return xdr.TransactionResult(xdr.Int64(fee_charged), body, xdr.TransactionResultExt(0)).to_xdr()
