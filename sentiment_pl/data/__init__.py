"""The data layer: tweets from their files, as chats, encoded to token ids with completion masks, batched.

Imports nothing of the model, training or commands. The tweet sources are re-exported here, so a config can
name them short: `sentiment_pl.data.TweetEvalFolder`, `sentiment_pl.data.HubTweetEval`,
`sentiment_pl.data.LocalFiles`.
"""

from sentiment_pl.data.sources import HubTweetEval, LocalFiles, TweetEvalFolder

__all__ = ["HubTweetEval", "LocalFiles", "TweetEvalFolder"]
