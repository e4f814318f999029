"""The compliance report: was the policy followed? (computation pure, rendering separate)."""
