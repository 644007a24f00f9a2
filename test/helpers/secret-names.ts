/** The names real clients give their secrets (OpenAI/LangChain clients, OAuth, cookies, web forms). */
export const SECRET_NAMES = [
  'authorization', 'Authorization', 'proxy-authorization', 'api_key', 'apiKey', 'API-KEY', 'x-api-key', 'openai_api_key',
  'token', 'access_token', 'accessToken', 'refresh_token', 'id_token', 'bearer_token', 'session_token', 'csrfToken',
  'secret', 'client_secret', 'clientSecret', 'aws_secret_access_key', 'password', 'Password', 'passwd', 'passphrase',
  'db_password', 'cookie', 'Cookie', 'set-cookie', 'sessionId', 'session', 'credentials', 'private_key', 'privateKey',
  'access_key', 'auth', 'authKey', 'jwt', 'signature', 'otp',
];
