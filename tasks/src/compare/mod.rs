//! The `compare` outputs: leaderboard, plots and the HTML report (issue 7).
