#!/bin/bash
# Scores /app/report: 1.0 when totals.csv and summary.txt are both right, else 0.0.
mkdir -p /logs/verifier
expected_totals=$'electronics,67\nhardware,400\nsupplies,23'
totals=$(cat /app/report/totals.csv 2>/dev/null)
summary=$(cat /app/report/summary.txt 2>/dev/null | tr -d '[:space:]')
ok=1
[ "$totals" = "$expected_totals" ] || { echo "totals.csv is missing or wrong"; ok=0; }
[ "$summary" = "490" ] || { echo "summary.txt is missing or wrong"; ok=0; }
if [ "$ok" = 1 ]; then echo "report is correct"; echo 1.0 > /logs/verifier/reward.txt; else echo 0.0 > /logs/verifier/reward.txt; fi
