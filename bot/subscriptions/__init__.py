"""Subscriptions: matching new articles to the topics that chats follow (``/follow``)."""
